"""fastmlp's threads: Numba's pool, started once with a short spin, held to the process's budget, and for
short calls to the cores that are idle at the moment of the call.

None of this changes a bit of any result: how a batch is cut into groups is decided by plan from the
shapes alone, and the groups' buffers are summed in group order; the threads only decide which of them
runs each group (one thread runs them all, in turn).

Why short calls look at the idle cores: a parallel region ends when its last thread does, and a thread
whose core another thread holds waits for the scheduler. After each threaded product NumPy's OpenBLAS
keeps its own threads spinning for 2^28 cycles (0.11 s on a 2.4 GHz core), so a program that calls NumPy
between fastmlp's steps hands fastmlp's second thread a core that is taken: alternating a minimal NumPy
step with a fastmlp step at (128, 64, 128, 10), float64, fastmlp's took 553 us against 194 alone with
two threads, and 243 against 222 alone on one (2-core AMD EPYC, OpenBLAS Haswell kernels). A short call
gains 10-20% from a second core and loses 2-3x from a busy one, so it takes a second thread only when a
core is idle; a long one (over SHORT_CALL_MACS) keeps its threads: the spin ends within its run.
"""

import contextlib
import functools
import os
import time

import numba as nb

# How long Numba's OpenMP threads spin for work after a parallel region before they sleep: libgomp's
# default (300,000 spins, milliseconds) kept a core busy through the caller's next NumPy product,
# whose own BLAS threads then waited for it: alternating a NumPy step with a fastmlp step at
# (128, 64, 128, 10), 2 threads, NumPy's took 4.1 ms instead of 0.17 (2-core AMD EPYC, SkylakeX
# kernels); with 4,000 spins, 0.19. Fewer spins let the threads fall asleep between back-to-back
# steps, and waking one costs 20-40 us in a virtual machine: 1,000 spins took the public step
# there from 83 to 97 us (188 in the benchmark harness's loop).
OMP_SPIN = {"GOMP_SPINCOUNT": "4000"}

SHORT_CALL_MACS = 1 << 22   # a call of at most this many multiply-adds a forward pass is short (see above)
WAKE_MIN_MACS = 1 << 19     # a call of fewer wakes no sleeping thread (see IdleCores)
OWN_SPIN_S = 2.5e-4         # after a parallel region fastmlp's own threads may still spin this long, and
                            # are not someone else's: 4,000 pauses, 0.1 ms measured on that EPYC (a
                            # pause takes about 65 cycles on AMD's Zen, 140 on Intel's cores since Skylake)


@functools.cache
def start_threads():
    """Start Numba's thread pool, once per process, its OpenMP threads spinning for OMP_SPIN only,
    unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT (libgomp reads them when it loads: the
    process's environment is restored right after). A cached function that calls a parallel one
    does not start the pool when loaded from the cache, and the parallel call then crashes (numba
    issue #8578); get_num_threads() starts it. kernels.spec_of, where every entry point starts, calls
    this."""
    chosen = any(name in os.environ for name in ("OMP_WAIT_POLICY", *OMP_SPIN))
    with environment({} if chosen else OMP_SPIN):
        nb.get_num_threads()


@contextlib.contextmanager
def environment(settings):
    """os.environ with `settings` added for the duration, then as it was."""
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def hold_to_budget():
    """Numba's threads for the calling thread (Numba counts them per thread) held to thread_budget."""
    budget = process_budget()
    if budget is not None and nb.get_num_threads() > budget:
        nb.set_num_threads(budget)


@functools.cache
def process_budget():
    return thread_budget(os.environ)


def thread_budget(env):
    """How many threads fastmlp may use when NUMBA_NUM_THREADS does not say: OMP_NUM_THREADS, the budget
    that schedulers give a process (a dask worker's nanny sets it, and OPENBLAS/MKL_NUM_THREADS, to 1,
    whatever its threads_per_worker: one thread per task, but not Numba's: distributed issue #9075), so
    that 2 one-thread workers on 2 cores run 2 threads, not 4 (Numba counts threads per calling thread:
    each of a worker's task threads is held to the budget). None: no budget. The process that starts
    a LocalCluster's workers gets the nanny's settings in its own environment too (and
    __DASK_PARENT_PID, its own pid): there they are the workers' budget, not its own, which a user's
    later local fit would otherwise run on."""
    if "NUMBA_NUM_THREADS" in env or env.get("__DASK_PARENT_PID") == str(os.getpid()):
        return None
    try:
        budget = int(env.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        return None
    return budget if budget >= 1 else None


def threads_given(wanted, cpus, runnable, own_spinning):
    """Threads for a short call that would use `wanted`: the caller's core and the idle ones. runnable:
    the machine's runnable threads now, the caller and own_spinning of fastmlp's threads among them."""
    others = runnable - 1 - own_spinning
    return max(1, min(wanted, cpus - others))


class IdleCores:
    """How many threads a short call takes now (threads_given), from /proc/loadavg's count of runnable
    threads (its fourth field, "runnable/total", the whole machine's), read with one pread of a file
    kept open (3 us). Where it cannot be read (no /proc, or FASTMLP_FOLLOW_IDLE_CORES=0, which the
    determinism tests set to hold two threads), every call takes the threads it wants.

    A call of fewer than WAKE_MIN_MACS multiply-adds that comes alone (fastmlp's last call ended over
    OWN_SPIN_S ago, so its threads sleep) runs on one thread: waking a sleeping thread costs it more
    than the thread's share saves. One row through (784, 256, 128, 10) as a served model sees it, a
    millisecond apart, us, one thread against two (2-core AMD EPYC, SkylakeX kernels): float64 65
    against 79, float32 45 against 64; back to back, 44 against 35 and 28 against 25, so calls that
    follow each other closely take the second thread (its first wake-up then serves all of them).

    The count is the machine's, so a busy neighbour process counts as well: a short call gains little
    from a core it has to share, and on a machine whose other cores this process may not use it runs
    on one thread, never on other bits."""

    def __init__(self, path="/proc/loadavg", follow=True):
        self.fd = None
        if follow:
            try:
                self.fd = os.open(path, os.O_RDONLY)
            except OSError:
                pass
        self.cpus = os.cpu_count() or 1
        self.last_end = -1.0          # when fastmlp's last call ended (perf_counter) ...
        self.last_threads = 1         # ... and on how many threads

    def runnable(self):
        try:
            return int(os.pread(self.fd, 64, 0).split()[3].split(b"/")[0])
        except (OSError, ValueError, IndexError):
            return None

    def threads(self, wanted, macs=SHORT_CALL_MACS):
        if self.fd is None or wanted == 1:
            return wanted
        recent = time.perf_counter() - self.last_end < OWN_SPIN_S
        if not recent and macs < WAKE_MIN_MACS:
            return 1
        runnable = self.runnable()
        if runnable is None:
            return wanted
        return threads_given(wanted, self.cpus, runnable, self.last_threads - 1 if recent else 0)

    def ended(self, threads):
        self.last_end, self.last_threads = time.perf_counter(), threads


@functools.cache
def idle_cores():
    """The process's IdleCores."""
    return IdleCores(follow=os.environ.get("FASTMLP_FOLLOW_IDLE_CORES", "1") != "0")


class CallThreads:
    """The context of one kernel call of `macs` multiply-adds a forward pass: Numba's threads within
    the process's budget (hold_to_budget) and, for a short call, within the cores idle now (IdleCores),
    set back afterwards; BLAS held to one thread by `blas` (blas.one_blas_thread, or a context that does
    nothing for the fused path, which calls no BLAS)."""

    def __init__(self, macs, blas):
        self.macs, self.blas = macs, blas

    def __enter__(self):
        hold_to_budget()
        self.wanted = nb.get_num_threads()
        self.threads = self.wanted if self.macs > SHORT_CALL_MACS else idle_cores().threads(self.wanted, self.macs)
        if self.threads != self.wanted:
            nb.set_num_threads(self.threads)
        self.blas.__enter__()

    def __exit__(self, *exc_info):
        self.blas.__exit__(*exc_info)
        if self.threads != self.wanted:
            nb.set_num_threads(self.wanted)
        idle_cores().ended(self.threads)
