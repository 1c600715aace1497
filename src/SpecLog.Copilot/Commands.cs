using System.Collections.Immutable;

namespace SpecLog.Copilot;

/// <summary>
/// Identity of a client command. Each client numbers its commands with increasing <see cref="Seq"/>; a replica executes a
/// command only if its sequence number is above the client's high-water mark, so each command runs at most once even
/// though it appears in both logs (and a newer command from the same client supersedes an older one still in flight).
/// </summary>
/// <param name="Client">The client (in production: the shard).</param>
/// <param name="Seq">Per-client sequence number, increasing (in production: the report sequence number).</param>
public readonly record struct CommandId(int Client, long Seq)
{
    /// <summary>Short form for logs and test output.</summary>
    public override string ToString() => $"c{Client}#{Seq}";
}

/// <summary>A client command: its identity and an opaque payload the host's state machine applies.</summary>
/// <typeparam name="T">The payload type (in production: a shard report).</typeparam>
/// <param name="Id">The command's identity, used for exactly-once execution.</param>
/// <param name="Payload">What the host applies when the command executes.</param>
public readonly record struct Command<T>(CommandId Id, T Payload);

/// <summary>
/// The value of one log entry: a batch of commands (or a no-op) and its dependency, the index of the last entry of the
/// other log that must execute before it (-1 for none).
/// </summary>
/// <typeparam name="T">The command payload type.</typeparam>
public sealed class EntryValue<T>
{
    /// <summary>Creates an entry value.</summary>
    public EntryValue(bool isNoOp, long dep, ImmutableArray<Command<T>> commands)
    {
        IsNoOp = isNoOp;
        Dep = isNoOp ? -1 : dep;
        Commands = isNoOp || commands.IsDefault ? [] : commands;
    }

    /// <summary>The no-op value a recovery writes into an entry that cannot have been chosen; it executes nothing and depends on nothing.</summary>
    public static EntryValue<T> NoOp { get; } = new(true, -1, []);

    /// <summary>True for a no-op entry (no commands, no dependency).</summary>
    public bool IsNoOp { get; }

    /// <summary>Index of the last entry of the other log that must execute first; -1 for none.</summary>
    public long Dep { get; }

    /// <summary>The batch of commands, in proposal order.</summary>
    public ImmutableArray<Command<T>> Commands { get; }

    /// <summary>The same commands with another dependency (the slow path's final dependency).</summary>
    public EntryValue<T> WithDep(long dep) => dep == Dep || IsNoOp ? this : new EntryValue<T>(false, dep, Commands);

    /// <summary>True when both values are the same decision: same no-op flag, dependency and command identities in order.</summary>
    public bool SameAs(EntryValue<T> other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (ReferenceEquals(this, other))
        {
            return true;
        }

        if (IsNoOp != other.IsNoOp || Dep != other.Dep || Commands.Length != other.Commands.Length)
        {
            return false;
        }

        for (var i = 0; i < Commands.Length; i++)
        {
            if (Commands[i].Id != other.Commands[i].Id)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Short form for logs and test output.</summary>
    public override string ToString() => IsNoOp ? "noop" : $"[{string.Join(",", Commands.Select(c => c.Id))}]->{Dep}";
}
