"""What the CPU is: kernel choices and benchmark reports depend on it."""
import functools


@functools.lru_cache(maxsize=None)
def cpuinfo_field(name: str) -> str:
    """The first value of ``name`` in ``/proc/cpuinfo`` (e.g.
    ``'vendor_id'``, ``'model name'``), or ``''`` where the system does not
    say."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, sep, value = line.partition(':')
                if sep and key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ''
