namespace SpecLog.Copilot;

public sealed partial class Replica<T>
{
    /// <summary>Replays one persisted record into the acceptor state (constructor only; a checkpoint record is handled apart).</summary>
    private void Restore(PersistRecord<T> record)
    {
        switch (record)
        {
            case ViewPromiseRecord<T> v:
                _logs[v.Log].ViewPromise = Ballot.Max(_logs[v.Log].ViewPromise, v.Promised);
                break;
            case PilotRecord<T> p:
                _activated[p.Log] = p.Ballot;
                break;
            case RebuildRecord<T> r:
                RestoreFloor(r.Floor);
                break;
            case KnownSlotRecord<T> k:
                _logs[k.Log].MaxKnown = Math.Max(_logs[k.Log].MaxKnown, k.Slot);
                break;
            case SlotRecord<T> r when r.Slot >= _logs[r.Log].Base:
                // (A record below the checkpoint's base is of a compacted entry: committed everywhere, nothing to rebuild.)
                var s = _logs[r.Log].GetOrAdd(r.Slot);
                s.Promised = r.Promised;
                s.Status = r.Status;
                s.AcceptedBallot = r.AcceptedBallot;
                s.Value = r.Value;
                s.FastOk = r.FastOk;
                s.ReplyDep = r.ReplyDep;
                s.CompatDep = r.CompatDep;
                s.Guarded = r.Guarded;
                break;
        }
    }

    private void PersistSlot(int log, long slot, SlotState s)
    {
        _fx.Add(new PersistEffect<T>(RecordOf(log, slot, s)));
    }

    private static SlotRecord<T> RecordOf(int log, long slot, SlotState s) =>
        new(log, slot, s.Promised, s.Status, s.AcceptedBallot, s.Value, s.FastOk, s.ReplyDep, s.CompatDep, s.Guarded);

    private static SlotReport<T> Snapshot(SlotState s) => new(s.Status, s.AcceptedBallot, s.Value, s.FastOk);

    /// <summary>Acceptor state of one entry.</summary>
    private sealed class SlotState
    {
        public Ballot Promised = Ballot.None;
        public SlotStatus Status;
        public Ballot AcceptedBallot = Ballot.None;
        public EntryValue<T>? Value;
        public bool FastOk;
        public long ReplyDep = -1;
        public long CompatDep = long.MaxValue;
        public bool Guarded;

        public bool Exists => Status != SlotStatus.Empty || Guarded;

        public bool IsCommitted => Status == SlotStatus.Committed;

        /// <summary>Nothing promised, accepted or guarded (an entry looked at but never changed): not worth a record.</summary>
        public bool IsBlank => Status == SlotStatus.Empty && Promised.IsNone && !Guarded && CompatDep == long.MaxValue;

        /// <summary>
        /// The dependency the compatibility check assumes for this entry: the committed one once known, otherwise the
        /// lowest non-no-op dependency ever accepted here (an entry known only through Accept counts too), -1 under a
        /// recovery guard.
        /// </summary>
        public long EffectiveCompat => Status == SlotStatus.Committed ? (Value!.IsNoOp ? long.MaxValue : Value.Dep) : CompatDep;
    }

    /// <summary>
    /// Acceptor state of one log. Entry indices are absolute; entries below <see cref="Base"/> were compacted: they are
    /// committed (durably) at every replica and executed here, and nothing about them is held any more.
    /// </summary>
    private sealed class LogState
    {
        private readonly List<SlotState?> _slots = [];
        public Ballot ViewPromise;
        public long MaxKnown = -1;
        public long CommittedPrefix;
        public long MaxCommitted = -1;

        /// <summary>The first entry index held; everything below was compacted.</summary>
        public long Base { get; private set; }

        /// <summary>One past the highest entry index with room allocated (entries in [Base, End) may be held).</summary>
        public long End => Base + _slots.Count;

        /// <summary>The state of an entry, or null when none is held (never held, or compacted: below <see cref="Base"/>).</summary>
        public SlotState? Get(long slot) => slot >= Base && slot < End ? _slots[(int)(slot - Base)] : null;

        /// <summary>The state of an entry, created empty if need be. Never called below <see cref="Base"/>.</summary>
        public SlotState GetOrAdd(long slot)
        {
            if (slot < Base)
            {
                throw new InvalidOperationException($"Entry {slot} lies below the compaction base {Base}.");
            }

            while (End <= slot)
            {
                _slots.Add(null);
            }

            return _slots[(int)(slot - Base)] ??= new SlotState();
        }

        /// <summary>
        /// Drops every entry below <paramref name="newBase"/> (the caller checked it is safe). Removing from the front of
        /// the list shifts what is left, so hosts compact in chunks (<see cref="CopilotOptions.CompactionChunk"/>): the
        /// cost per dropped entry is then the held window over the chunk size.
        /// </summary>
        public void DropBelow(long newBase)
        {
            if (newBase <= Base)
            {
                return;
            }

            var count = (int)Math.Min(newBase - Base, _slots.Count);
            _slots.RemoveRange(0, count);
            Base = newBase;
            CommittedPrefix = Math.Max(CommittedPrefix, Base);
            MaxCommitted = Math.Max(MaxCommitted, Base - 1);
            MaxKnown = Math.Max(MaxKnown, Base - 1);
        }

        /// <summary>Starts over from a checkpoint: nothing held, entries below <paramref name="newBase"/> compacted.</summary>
        public void ResetTo(long newBase)
        {
            _slots.Clear();
            Base = newBase;
            CommittedPrefix = newBase;
            MaxCommitted = newBase - 1;
            MaxKnown = Math.Max(MaxKnown, newBase - 1);
        }
    }
}
