"""State dicts as plain bytes (a job is one picklable object that travels to Ray workers), and
the one data-parallel gradient average both training loops use."""

from __future__ import annotations

import io

import torch


def to_bytes(obj) -> bytes:
    """``torch.save`` of ``obj`` into bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes, weights_only: bool = True):
    """Inverse of :func:`to_bytes`, onto the CPU."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=weights_only)


def cpu_state_bytes(model: torch.nn.Module) -> bytes:
    """The model's state dict, detached and on the CPU, as bytes."""
    return to_bytes({k: v.detach().cpu() for k, v in model.state_dict().items()})


OPTIMIZERS = ("sgd", "adam")


def build_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """The one optimiser factory of both training loops: ``sgd`` (with ``momentum``, the papers')
    or ``adam`` (default betas, ``momentum`` unused); ``weight_decay`` is the L2 term of either."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce and average the gradients of ``params`` in one flattened message
    (a no-op for one worker, so the in-process loop is the one-worker case exactly)."""
    if world_size == 1:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p)
        offset += n
