using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace SpecLog.Consumer;

/// <summary>Membership of a consumer group: heartbeats, the assignment they bring back, and stopping when the lease lapses.</summary>
public sealed partial class SpeculativeConsumer<TState, TOutput>
{
    private sealed class GroupMembership(SpeculativeConsumer<TState, TOutput> owner) : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private int[] _assigned = [];
        private Task _loop = Task.CompletedTask;

        private IConsumerGroupGrain Group => owner._grains.GetGrain<IConsumerGroupGrain>(owner._name);

        /// <summary>The shards the coordinator last let this member hold (none once the lease lapsed).</summary>
        public int[] Assigned => Volatile.Read(ref _assigned);

        public void Start(AsyncSignal changed, CancellationToken cancellationToken)
        {
            var token = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token).Token;
            _loop = Task.Run(() => LoopAsync(changed, token), CancellationToken.None);
        }

        private async Task LoopAsync(AsyncSignal changed, CancellationToken token)
        {
            var lease = owner._options.GroupLease;
            var every = lease / 3;
            long renewedAt = 0;
            while (!token.IsCancellationRequested)
            {
                var sentAt = Stopwatch.GetTimestamp();
                try
                {
                    var assignment = await Group.HeartbeatAsync(owner.MemberId, owner.Partitions, lease).WaitAsync(every, token);
                    renewedAt = sentAt;
                    Update(assignment.Shards, changed);
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    return; // stopping while a heartbeat was out: LeaveAsync awaits this loop and leaves the group
                }
                catch (Exception e) when (!token.IsCancellationRequested)
                {
                    LogHeartbeatFailed(owner._logger, e, owner._name, owner.MemberId);
                    if (Assigned.Length > 0 && (renewedAt == 0 || Stopwatch.GetElapsedTime(renewedAt) >= lease - every))
                    {
                        // The coordinator will count this member dead once the lease lapses: stop before it does.
                        LogLeaseLapsed(owner._logger, owner._name, owner.MemberId);
                        Update([], changed);
                    }
                }

                try
                {
                    await Task.Delay(every, token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        private void Update(int[] shards, AsyncSignal changed)
        {
            if (!shards.AsSpan().SequenceEqual(Assigned))
            {
                Volatile.Write(ref _assigned, shards);
                changed.Set();
            }
        }

        /// <summary>Stops heartbeating and leaves the group so the others take the shards at once.</summary>
        public async Task LeaveAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            try
            {
                await Group.LeaveAsync(owner.MemberId).WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception e) when (e is TimeoutException or OrleansException)
            {
                LogHeartbeatFailed(owner._logger, e, owner._name, owner.MemberId); // the lease lapses instead
            }
        }

        public void Dispose() => _stop.Dispose();
    }

    [LoggerMessage(EventId = 7005, Level = LogLevel.Warning, Message = "Consumer group {Group}: heartbeat of {Member} failed")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception e, string group, string member);

    [LoggerMessage(EventId = 7006, Level = LogLevel.Warning, Message = "Consumer group {Group}: {Member} could not renew its lease and stops its shards")]
    private static partial void LogLeaseLapsed(ILogger logger, string group, string member);
}
