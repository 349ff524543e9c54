/* threads.c: the thread pool every parallel kernel runs on.
 *
 * fnn_run(n, nth, f, ctx) calls f(ctx, i, slot) for each task i in [0, n) on the calling
 * thread (slot 0) and up to nth - 1 pool workers (slots 1..nth-1). Tasks go to whichever
 * thread claims them first, and the call returns when all are done. The caller never
 * waits for a worker that has not started: when a co-tenant holds a core, or a worker is
 * still waking up, the caller runs the tasks itself. (An OpenMP region's end waits for
 * every thread of its team, so one descheduled thread stalls each kernel: a 2-thread
 * step of the reference MLP took 4x its 1-thread time next to one busy process.)
 *
 * Idle workers spin for FNN_SPIN_NS, so the kernels of one training step find them awake
 * (a fork costs ~1 us instead of a ~15-25 us wake-up on a VM), then sleep on a condition
 * variable. The thread count is OpenMP's (OMP_NUM_THREADS, omp_set_num_threads and
 * threadpoolctl act on it); a build without OpenMP runs on one thread.
 *
 * One job at a time: a kernel called from inside a task, or from a second application
 * thread while a job runs, runs its tasks on its own thread. */
#define _GNU_SOURCE /* sched_getcpu */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long an idle worker stays awake: the gaps between the parallel kernels of a
 * training step (Python and one-thread kernels in between) are tens to hundreds of us. */
#define FNN_SPIN_NS 200000

/* A worker that a job finds on its caller's CPU sleeps this long, without spinning or
 * taking tasks: when another process holds the other core (or the process is confined to
 * one CPU), the scheduler wakes the worker where the caller runs, and each job it took
 * preempted the caller, then spun in its place (the reference MLP's step 2x slower than
 * on one thread). Parked, it leaves the caller a CPU of its own. So does a worker past
 * the caller's thread count (set lower than it was): spinning, it took cores from the
 * ones working (2 threads after 8 on 2 cores: a 300x400x300 GEMM 5.8x slower). */
#define FNN_PARK_NS 20000000

typedef struct {
    fnn_task_fn f;
    void *ctx;
    int64_t n;
    int nth;
    int threads;  /* the caller's thread count, which nth may be below */
} job_t;

static job_t job;                    /* written only while gate is closed and active == 0 */
static atomic_int_least64_t next;    /* the next unclaimed task */
static atomic_int_least64_t done;    /* tasks finished */
static atomic_uint epoch;            /* bumped per job: wakes the workers */
static atomic_int gate;              /* 1: the job fields may be read */
static atomic_int active;            /* workers between announcing and leaving a job */
static atomic_int sleepers;
static atomic_int caller_cpu = -1;   /* the CPU the last job's caller ran on */
static pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;  /* one job at a time */
static int workers;                  /* started; they live as long as the process */
static _Thread_local int in_task;

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void run_tasks(int slot)
{
    int64_t i;
    while ((i = atomic_fetch_add(&next, 1)) < job.n) {
        job.f(job.ctx, i, slot);
        atomic_fetch_add(&done, 1);
    }
}

static int this_cpu(void)
{
#ifdef __linux__
    return sched_getcpu();
#else
    return -1;
#endif
}

static int on_callers_cpu(void)
{
    int cpu = this_cpu();
    return cpu >= 0 && cpu == atomic_load_explicit(&caller_cpu, memory_order_relaxed);
}

/* Sleep FNN_PARK_NS; no job wakes a parked worker. */
static void park(void)
{
    struct timespec t = {0, FNN_PARK_NS};
    nanosleep(&t, NULL);
}

/* Wait until epoch differs from seen: spin, then sleep. Returns the new epoch. */
static unsigned wait_epoch(unsigned seen)
{
    int64_t start = now_ns();
    for (unsigned spins = 0;; spins++) {
        unsigned e = atomic_load(&epoch);
        if (e != seen)
            return e;
        CPU_RELAX();
        if ((spins & 255) == 255 && now_ns() - start > FNN_SPIN_NS)
            break;
    }
    pthread_mutex_lock(&sleep_mu);
    atomic_fetch_add(&sleepers, 1);
    while (atomic_load(&epoch) == seen)
        pthread_cond_wait(&sleep_cv, &sleep_mu);
    atomic_fetch_sub(&sleepers, 1);
    pthread_mutex_unlock(&sleep_mu);
    return atomic_load(&epoch);
}

static void *worker_main(void *arg)
{
    int slot = (int)(intptr_t)arg;
    unsigned seen = atomic_load(&epoch);
    in_task = 1;  /* kernels called from a task run on this thread */
    for (;;) {
        unsigned e = wait_epoch(seen);
        if (on_callers_cpu()) {
            park();
            e = atomic_load(&epoch);
        }
        /* Announce, then look: the caller rewrites the job only with the gate closed and
         * no worker announced (both sequentially consistent, so one of us sees the other). */
        atomic_fetch_add(&active, 1);
        int spare = 0;
        if (atomic_load(&gate) && atomic_load(&epoch) == e) {
            seen = e;
            spare = slot >= job.threads;
            if (slot < job.nth)
                run_tasks(slot);
        }
        atomic_fetch_sub(&active, 1);
        if (seen != e)  /* the job was being replaced: look again */
            CPU_RELAX();
        else if (spare)
            park();
    }
    return NULL;
}

/* After fork() the child has no workers (and maybe a held lock): start afresh. */
static void after_fork_child(void)
{
    workers = 0;
    atomic_store(&active, 0);
    atomic_store(&sleepers, 0);
    atomic_store(&gate, 0);
    pthread_mutex_init(&busy, NULL);
    pthread_mutex_init(&sleep_mu, NULL);
    pthread_cond_init(&sleep_cv, NULL);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, after_fork_child); }

/* Start workers up to `want`; returns how many there are. */
static int start_workers(int want)
{
    pthread_once(&atfork_once, register_atfork);
    while (workers < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int st = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)(workers + 1));
        pthread_attr_destroy(&attr);
        if (st != 0)
            break;  /* run with the workers there are */
        workers++;
    }
    return workers;
}

void fnn_run(int64_t n, int nth, fnn_task_fn f, void *ctx)
{
    if (nth > 1 && n > 1 && !in_task && pthread_mutex_trylock(&busy) == 0) {
        nth = (int)FNN_MIN(nth, start_workers(nth - 1) + 1);
        atomic_store(&gate, 0);
        while (atomic_load(&active) != 0)
            CPU_RELAX();  /* a worker still looking at the last job */
        job = (job_t){.f = f, .ctx = ctx, .n = n, .nth = nth, .threads = omp_get_max_threads()};
        atomic_store_explicit(&caller_cpu, this_cpu(), memory_order_relaxed);
        atomic_store(&next, 0);
        atomic_store(&done, 0);
        atomic_fetch_add(&epoch, 1);
        atomic_store(&gate, 1);
        if (atomic_load(&sleepers) > 0) {
            pthread_mutex_lock(&sleep_mu);
            pthread_cond_broadcast(&sleep_cv);
            pthread_mutex_unlock(&sleep_mu);
        }
        in_task = 1;
        run_tasks(0);
        in_task = 0;
        /* Workers finishing their tasks. No sched_yield: it would hand this core to
         * any other runnable process for a whole time slice. */
        while (atomic_load(&done) < n)
            CPU_RELAX();
        pthread_mutex_unlock(&busy);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        f(ctx, i, 0);
}

int fnn_threads_for(double work)
{
    if (in_task)
        return 1;
    /* Each thread gets at least FNN_WORK_PER_THREAD. */
    double want = work / FNN_WORK_PER_THREAD;
    return want < 2.0 ? 1 : (int)FNN_MIN(want, (double)omp_get_max_threads());
}
