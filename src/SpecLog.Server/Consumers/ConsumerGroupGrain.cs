using System.Diagnostics;
using Microsoft.Extensions.Logging;
using SpecLog.Client;

namespace SpecLog.Server.Consumers;

/// <summary>
/// A consumer group's coordinator (see <see cref="IConsumerGroupGrain"/>). Its state lives only in memory: members
/// report what they hold in every heartbeat, so a coordinator activated anew (its silo died) first listens for one
/// lease, learning who holds what, before it hands out any shard.
/// </summary>
internal sealed partial class ConsumerGroupGrain(SpecLogClient log, ILogger<ConsumerGroupGrain> logger) : Grain, IConsumerGroupGrain
{
    private static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan ShardListAge = TimeSpan.FromSeconds(1);
    private readonly Dictionary<string, Member> _members = [];
    private readonly Dictionary<int, string> _owner = [];
    private readonly long _activatedAt = Stopwatch.GetTimestamp();
    private TimeSpan _quiet;
    private long _generation;
    private int[] _shards = [];
    private long _shardsAt;

    private sealed class Member(TimeSpan lease)
    {
        public TimeSpan Lease { get; set; } = lease;

        public long LastSeen { get; set; } = Stopwatch.GetTimestamp();

        public int[] Held { get; set; } = [];
    }

    public async Task<GroupAssignment> HeartbeatAsync(string member, int[] held, TimeSpan lease)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(member);
        ArgumentNullException.ThrowIfNull(held);
        if (lease <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(lease), lease, "A lease must be positive.");
        }

        await RefreshShardsAsync();
        Expire();
        if (!_members.TryGetValue(member, out var m))
        {
            m = _members[member] = new Member(lease);
            _generation++;
            LogJoined(logger, this.GetPrimaryKeyString(), member, _members.Count);
        }

        // Until a lease has passed since activation, members this coordinator has not heard yet may hold shards.
        _quiet = TimeSpan.FromTicks(Math.Max(_quiet.Ticks, (lease + Margin).Ticks));
        m.Lease = lease;
        m.LastSeen = Stopwatch.GetTimestamp();
        m.Held = held;
        foreach (var s in held)
        {
            _owner.TryAdd(s, member); // a holder this coordinator did not know of (it was activated anew)
        }

        var target = Target();
        var grant = new List<int>();
        foreach (var s in _shards.Union(held).Order())
        {
            var owner = _owner.GetValueOrDefault(s);
            var mine = target.GetValueOrDefault(s) == member;
            if (owner == member)
            {
                if (mine)
                {
                    grant.Add(s);
                }
                else if (!held.Contains(s))
                {
                    _owner.Remove(s); // given up: the shard's target member takes it at its next heartbeat
                    _generation++;
                }
            }
            else if (owner is null && mine && !Quiet)
            {
                _owner[s] = member;
                grant.Add(s);
                _generation++;
            }
        }

        return new GroupAssignment(_generation, [.. grant], _members.Count);
    }

    public Task LeaveAsync(string member)
    {
        if (_members.Remove(member))
        {
            Forget(member);
            LogLeft(logger, this.GetPrimaryKeyString(), member, "left", _members.Count);
        }

        return Task.CompletedTask;
    }

    public Task<GroupStatus> GetState() => GetStatusAsync();

    public Task<GroupStatus> GetStatusAsync()
    {
        Expire();
        var members = _members.ToDictionary(p => p.Key, p => _owner.Where(o => o.Value == p.Key).Select(o => o.Key).Order().ToArray());
        var unassigned = _shards.Where(s => !_owner.ContainsKey(s)).ToArray();
        return Task.FromResult(new GroupStatus(_generation, members, unassigned));
    }

    private bool Quiet => Stopwatch.GetElapsedTime(_activatedAt) < _quiet;

    private async Task RefreshShardsAsync()
    {
        if (_shardsAt == 0 || Stopwatch.GetElapsedTime(_shardsAt) > ShardListAge)
        {
            // Every shard the log ever had: a removed shard's last records still need their outputs released.
            _shards = [.. Enumerable.Range(0, await log.GetShardCountAsync())];
            _shardsAt = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>Members not heard from for their lease (and a margin for the trip) are dead: their shards are free.</summary>
    private void Expire()
    {
        foreach (var (name, m) in _members.ToArray())
        {
            if (Stopwatch.GetElapsedTime(m.LastSeen) > m.Lease + Margin)
            {
                _members.Remove(name);
                Forget(name);
                LogLeft(logger, this.GetPrimaryKeyString(), name, "lease lapsed", _members.Count);
            }
        }
    }

    private void Forget(string member)
    {
        foreach (var s in _owner.Where(o => o.Value == member).Select(o => o.Key).ToArray())
        {
            _owner.Remove(s);
        }

        _generation++;
    }

    /// <summary>
    /// Who should hold each active shard: members in name order get ⌈N/n⌉ or ⌊N/n⌋ shards each; a shard stays with its
    /// owner while that owner is under its share, so a join or a death moves only what it must.
    /// </summary>
    private Dictionary<int, string> Target()
    {
        var names = _members.Keys.Order(StringComparer.Ordinal).ToArray();
        var target = new Dictionary<int, string>();
        if (names.Length == 0)
        {
            return target;
        }

        var share = names.Select((n, i) => (n, q: _shards.Length / names.Length + (i < _shards.Length % names.Length ? 1 : 0))).ToDictionary(x => x.n, x => x.q);
        var count = names.ToDictionary(n => n, _ => 0);
        foreach (var s in _shards)
        {
            if (_owner.TryGetValue(s, out var o) && count.TryGetValue(o, out var c) && c < share[o])
            {
                target[s] = o;
                count[o] = c + 1;
            }
        }

        foreach (var s in _shards.Where(s => !target.ContainsKey(s)))
        {
            var to = names.Where(n => count[n] < share[n]).OrderBy(n => count[n]).ThenBy(n => n, StringComparer.Ordinal).First();
            target[s] = to;
            count[to]++;
        }

        return target;
    }

    [LoggerMessage(EventId = 7101, Level = LogLevel.Information, Message = "Consumer group {Group}: {Member} joined ({Members} members)")]
    private static partial void LogJoined(ILogger logger, string group, string member, int members);

    [LoggerMessage(EventId = 7102, Level = LogLevel.Information, Message = "Consumer group {Group}: {Member} {How} ({Members} members)")]
    private static partial void LogLeft(ILogger logger, string group, string member, string how, int members);
}
