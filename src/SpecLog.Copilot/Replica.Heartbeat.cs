namespace SpecLog.Copilot;

public sealed partial class Replica<T>
{
    /// <summary>
    /// Broadcasts the views, pilot activity, committed prefixes and highest known entries. The host sends it after the
    /// call's records are durable, so the committed prefixes it reports never go back (the compaction watermarks rely on
    /// that); this replica notes the same facts about itself.
    /// </summary>
    private void SendHeartbeat()
    {
        NoteWatermarks(Id, _logs[0].CommittedPrefix, _logs[1].CommittedPrefix, _logs[0].MaxKnown, _logs[1].MaxKnown);
        _fx.Add(new BroadcastEffect<T>(new Heartbeat<T>(
            _logs[0].ViewPromise,
            _logs[1].ViewPromise,
            _pilots[0] is not null,
            _pilots[1] is not null,
            _logs[0].CommittedPrefix,
            _logs[1].CommittedPrefix,
            _logs[0].MaxKnown,
            _logs[1].MaxKnown)));
    }

    private void OnHeartbeat(int from, Heartbeat<T> m)
    {
        NoteWatermarks(from, m.Committed0, m.Committed1, m.Known0, m.Known1);
        for (var log = 0; log < 2; log++)
        {
            var view = log == 0 ? m.View0 : m.View1;
            var active = log == 0 ? m.Active0 : m.Active1;
            var committed = log == 0 ? m.Committed0 : m.Committed1;
            NoteRound(view);
            var state = _logs[log];
            if (active && view.Replica == from)
            {
                if (view > state.ViewPromise)
                {
                    state.ViewPromise = view;
                    _fx.Add(new PersistEffect<T>(new ViewPromiseRecord<T>(log, view)));
                    CheckDeposed(log);
                }

                if (view == state.ViewPromise)
                {
                    _pilotHeard[log] = _now;
                    var anchor = log == 0 ? m.Known0 : m.Known1;
                    if (anchor > state.MaxKnown)
                    {
                        state.MaxKnown = anchor;
                        _fx.Add(new PersistEffect<T>(new KnownSlotRecord<T>(log, anchor)));
                    }

                    if (anchor >= 0)
                    {
                        Send(from, new AnchorAck<T>(log, view, anchor));
                    }
                }
            }

            if (committed > state.CommittedPrefix && _now >= _catchUpAt[log])
            {
                _catchUpAt[log] = _now + _options.RetransmitInterval;
                Send(from, new CatchUpRequest<T>(log, state.CommittedPrefix));
            }
        }
    }

    /// <summary>
    /// Sends the committed entries a replica behind asks for, from its first missing one. Entries below the compaction
    /// base are gone; they are served from the base on. Only a replica that lost its durable records can be that far
    /// behind (every replica had committed them durably before they were compacted), and it is rebuilt from a transfer
    /// checkpoint (see Replica.Rebuild.cs), whose committed prefix is at or above every replica's base.
    /// </summary>
    private void OnCatchUpRequest(int from, CatchUpRequest<T> m)
    {
        var state = _logs[m.Log];
        var sent = 0;
        for (var slot = Math.Max(state.Base, m.FromSlot); slot <= state.MaxCommitted && sent < _options.CatchUpBatch; slot++)
        {
            if (state.Get(slot) is { IsCommitted: true } s)
            {
                Send(from, new Commit<T>(m.Log, slot, s.Value!));
                sent++;
            }
        }
    }
}
