namespace SpecLog.Copilot;

/// <summary>A Paxos ballot: a round number and the replica that owns it, ordered by round and then by replica.</summary>
/// <param name="Round">The round; a replica picks a round above every round it has seen whenever it needs a new ballot.</param>
/// <param name="Replica">The replica that owns (proposes with) this ballot.</param>
public readonly record struct Ballot(int Round, int Replica) : IComparable<Ballot>
{
    /// <summary>The ballot below every real ballot.</summary>
    public static Ballot None => new(-1, -1);

    /// <summary>True for <see cref="None"/>.</summary>
    public bool IsNone => Round < 0;

    /// <summary>Orders by round, then by replica.</summary>
    public int CompareTo(Ballot other) => Round != other.Round ? Round.CompareTo(other.Round) : Replica.CompareTo(other.Replica);

    /// <summary>True when <paramref name="a"/> orders before <paramref name="b"/>.</summary>
    public static bool operator <(Ballot a, Ballot b) => a.CompareTo(b) < 0;

    /// <summary>True when <paramref name="a"/> orders after <paramref name="b"/>.</summary>
    public static bool operator >(Ballot a, Ballot b) => a.CompareTo(b) > 0;

    /// <summary>True when <paramref name="a"/> does not order after <paramref name="b"/>.</summary>
    public static bool operator <=(Ballot a, Ballot b) => a.CompareTo(b) <= 0;

    /// <summary>True when <paramref name="a"/> does not order before <paramref name="b"/>.</summary>
    public static bool operator >=(Ballot a, Ballot b) => a.CompareTo(b) >= 0;

    /// <summary>The larger of two ballots.</summary>
    public static Ballot Max(Ballot a, Ballot b) => a >= b ? a : b;

    /// <summary>Short form for logs and test output.</summary>
    public override string ToString() => IsNone ? "b-" : $"b{Round}.{Replica}";
}
