using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SpecLog.Server.Scheduling;

/// <summary>
/// Sub-millisecond wake-ups for grains. Grain timers and <see cref="Task.Delay(TimeSpan)"/> tick every few
/// milliseconds on common Linux hosts (measured 4–5 ms here), far coarser than Belfast's 1.5 × T_ord no-op deadline.
/// One thread per silo sleeps in short steps (nanosleep) and queues each due callback onto its grain's own
/// scheduler, so the callback runs as a normal grain turn.
/// </summary>
public sealed partial class DeadlineTicker : IDisposable
{
    /// <summary>How long the ticker thread sleeps between checks.</summary>
    public static readonly TimeSpan Resolution = TimeSpan.FromMicroseconds(250);

    private readonly object _gate = new();
    private readonly ManualResetEventSlim _signal = new(false);
    private Registration[] _registrations = [];
    private Thread? _thread;
    private volatile bool _stopped;

    /// <summary>Registers a callback to be queued on <paramref name="scheduler"/> when its wake-up time comes.</summary>
    public Registration Register(Orleans.Runtime.IWorkItemScheduler scheduler, Action callback)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(callback);
        ObjectDisposedException.ThrowIf(_stopped, this);
        var registration = new Registration(this, scheduler, callback);
        lock (_gate)
        {
            _registrations = [.. _registrations, registration];
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "SpecLog deadline ticker" };
                _thread.Start();
            }
        }

        return registration;
    }

    /// <summary>Stops the ticker thread.</summary>
    public void Dispose()
    {
        _stopped = true;
        _signal.Set();
        _thread?.Join(TimeSpan.FromSeconds(1));
    }

    private void Remove(Registration registration)
    {
        lock (_gate)
        {
            _registrations = _registrations.Where(r => !ReferenceEquals(r, registration)).ToArray();
        }
    }

    private void Run()
    {
        var nanos = (long)(Resolution.TotalMilliseconds * 1_000_000);
        var coarse = Stopwatch.Frequency / 500; // beyond 2 ms a plain wait is precise enough
        while (!_stopped)
        {
            var next = long.MaxValue;
            foreach (var r in _registrations)
            {
                next = Math.Min(next, r.Due);
            }

            var remaining = next == long.MaxValue ? long.MaxValue : next - Stopwatch.GetTimestamp();
            if (remaining > coarse)
            {
                // Nothing due soon (an idle log has nothing due at all): block until a wake-up is asked for.
                _signal.Reset();
                var wait = remaining == long.MaxValue ? 1000 : (int)Math.Max(1, (remaining - coarse) * 1000 / Stopwatch.Frequency);
                _signal.Wait(wait);
                continue;
            }

            Sleep(nanos);
            var now = Stopwatch.GetTimestamp();
            foreach (var r in _registrations)
            {
                r.FireIfDue(now);
            }
        }
    }

    private static void Sleep(long nanoseconds)
    {
        if (OperatingSystem.IsLinux())
        {
            var request = new TimeSpec { Seconds = 0, Nanoseconds = nanoseconds };
            _ = NanoSleep(in request, IntPtr.Zero);
        }
        else
        {
            Thread.Sleep(1);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static partial int NanoSleep(in TimeSpec request, IntPtr remaining);

    /// <summary>One grain's wake-up slot.</summary>
    public sealed class Registration : IDisposable
    {
        private readonly DeadlineTicker _owner;
        private readonly Orleans.Runtime.IWorkItemScheduler _scheduler;
        private readonly Action _callback;
        private long _due = long.MaxValue;

        internal Registration(DeadlineTicker owner, Orleans.Runtime.IWorkItemScheduler scheduler, Action callback)
        {
            _owner = owner;
            _scheduler = scheduler;
            _callback = callback;
        }

        /// <summary>Asks for one callback after <paramref name="delay"/> (an earlier pending request wins).</summary>
        public void WakeIn(TimeSpan delay)
        {
            var due = Stopwatch.GetTimestamp() + (long)(Math.Max(0, delay.TotalSeconds) * Stopwatch.Frequency);
            long current;
            do
            {
                current = Volatile.Read(ref _due);
                if (current <= due)
                {
                    return;
                }
            }
            while (Interlocked.CompareExchange(ref _due, due, current) != current);
            _owner._signal.Set();
        }

        internal long Due => Volatile.Read(ref _due);

        /// <summary>Stops the wake-ups.</summary>
        public void Dispose() => _owner.Remove(this);

        internal void FireIfDue(long now)
        {
            var due = Volatile.Read(ref _due);
            if (due <= now && Interlocked.CompareExchange(ref _due, long.MaxValue, due) == due)
            {
                _scheduler.QueueAction(_callback);
            }
        }
    }
}
