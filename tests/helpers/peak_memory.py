"""Run a script whose ``MMPoseInferencer`` counts the images it finishes,
and record the process's exact peak resident memory between given counts.

    python tests/helpers/peak_memory.py REPORT.json N0 N1 ... -- SCRIPT ARGS

Once image N0 is finished (read, predicted, drawn and written), the kernel's
peak RSS (VmHWM) is reset to the current RSS (``/proc/self/clear_refs``, 5);
once image N1 is finished the peak since N0 is read and reset again, and so
on. REPORT.json, rewritten at every mark, lists one entry per span:
``{"images": [N0, N1], "peak_kib": ..., "rss_kib": ...}`` (the peak over the
span, the RSS at its end). The peak is the kernel's: no sampling can miss it.
"""
import json
import os
import runpy
import sys
from typing import Dict, List


def status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmHWM, VmRSS)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}')


def reset_peak() -> None:
    """Set VmHWM to the current RSS."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def main() -> None:
    split = sys.argv.index('--')
    report, marks = sys.argv[1], [int(n) for n in sys.argv[2:split]]
    script, args = sys.argv[split + 1], sys.argv[split + 2:]
    spans: List[Dict] = []

    def finished(count: int) -> None:
        if count not in marks:
            return
        if count != marks[0]:
            spans.append(
                dict(
                    images=[marks[marks.index(count) - 1], count],
                    peak_kib=status_kib('VmHWM'),
                    rss_kib=status_kib('VmRSS')))
            with open(report + '.tmp', 'w') as f:
                json.dump(spans, f)
            os.replace(report + '.tmp', report)
        reset_peak()

    from mmpose.apis import MMPoseInferencer
    call = MMPoseInferencer.__call__

    def counting_call(self, *call_args, **kwargs):
        # batch size 1: one result per image, after its files are written
        for count, result in enumerate(call(self, *call_args, **kwargs), 1):
            finished(count)
            yield result

    MMPoseInferencer.__call__ = counting_call
    sys.argv = [script, *args]
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
