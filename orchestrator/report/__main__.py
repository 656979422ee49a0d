"""``python -m orchestrator.report``: a results Parquet -> the papers' tables (and figures).

    python -m orchestrator.report results/alac_demo
    python -m orchestrator.report results/table2_alignment_sha --format latex --figures figs/
    python -m orchestrator.report results/table1_pssw_vs_random_sha results/table1_pssw_vs_random_shb
    python -m orchestrator.report results/table2_alignment_sha --paper configs/alac/table3_sota_sha.yaml

Table: one row per experiment, method, dataset and swept setting (``setting.*`` columns), from
each trial's final row (its largest ``cycle``): MAE and RMSE as mean ± sample std (ddof 1; "-"
when n = 1), ``n`` = trials that finished, ``failed`` = trials that did not (never dropped
silently; their errors are listed under the table), and the paper's numbers beside ours where
the experiment's config names a matching result (see :mod:`orchestrator.report.paper`) and the
run is at paper scale (a smoke or demo run is never set beside the paper's numbers). For AL-AC a
second table gives MAE against the number of labeled images (every cycle). ``--pool KEY`` (or a
config's ``paper.pool_over``) averages a swept setting away, e.g. UCF_CC_50's five folds.

Paired comparisons follow (see :mod:`orchestrator.report.paired`): for two settings one swept key
apart, the MAE difference A − B on the seeds both ran, its 95 % CI, a paired test's p and n pairs.

Several RESULTS_DIRs render into one table (e.g. SHA and SHB halves of one paper table). A
directory without ``results.parquet`` whose sub-folders have one (a suite's storage folder)
reports all of them. Unless ``--no-report``, the figures (``--figures DIR``, default
``OUT/figures``) and ``OUT/report.md`` + a self-contained ``OUT/report.html`` are written, OUT
being ``--out`` or the first RESULTS_DIR (see :mod:`orchestrator.report.document`); their paths
are printed last. Exit status 2 with a message naming the path or column on unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.report.render import CSV_TABLES, pooled_keys, report_text
from orchestrator.report.tables import (
    FORMATS,
    ReportError,
    load_results,
    paper_references,
    paper_scale_only,
    summarize_cycles,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", help="folder(s) holding results.parquet")
    parser.add_argument("--format", choices=FORMATS, default="markdown")
    parser.add_argument("--table", choices=CSV_TABLES, default="final",
                        help="with --format csv: which table to print (final rows, every cycle, paired comparisons)")
    parser.add_argument("--figures", default=None, metavar="DIR", help="write PNG figures here (default: OUT/figures)")
    parser.add_argument("--out", default=None, metavar="OUT", help="write report.md/html here (default: the first RESULTS_DIR)")
    parser.add_argument("--no-report", action="store_true", help="print the tables only: no report files, no figures "
                        "unless --figures")
    parser.add_argument("--paper", default=None, metavar="CONFIG",
                        help="take the paper's numbers from this config's 'paper' section instead")
    parser.add_argument("--pool", action="append", default=[], metavar="KEY",
                        help="average over this swept setting instead of one row per value (repeatable)")
    args = parser.parse_args(argv)
    try:
        results = load_results(args.results_dirs)
        every_ref = paper_references(results.configs, args.paper)
        refs, not_compared = paper_scale_only(every_ref, results)
        pool = tuple(args.pool) + pooled_keys(every_ref)  # pooling holds at every scale
        sys.stdout.write(report_text(results, args.format, refs, pool, not_compared, args.table))
        side = sys.stderr if args.format == "csv" else sys.stdout  # csv output stays one CSV
        if args.no_report:
            if args.figures is not None:
                from orchestrator.report.figures import write_figures  # matplotlib only when asked for

                for line in write_figures(results, summarize_cycles(results, refs, pool), args.figures):
                    print(line, file=side)
        else:
            from orchestrator.report.document import write_report

            out = Path(args.out) if args.out else Path(args.results_dirs[0])
            markdown, page, lines = write_report(results, refs, pool, out, args.figures, list(argv or sys.argv[1:]),
                                                 not_compared)
            for line in lines + [f"report: {markdown}", f"report: {page}"]:
                print(line, file=side)
    except OSError as e:
        print(f"error: cannot write the report: {e}", file=sys.stderr)
        return 2
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
