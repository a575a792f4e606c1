using System.Diagnostics;
using System.Text;
using Workers.Contracts;

namespace Workers.Worker.Turns;

/// <summary>
/// The events of one turn attempt, numbered from the block of sequence numbers the attempt reserved. Reply text is
/// coalesced: a delta goes out when <c>DeltaMaxChars</c> characters are pending or <c>DeltaInterval</c> has passed
/// since the previous delta was confirmed.
/// </summary>
public sealed class TurnReply(ChatRequested request, long firstSeq, TurnEvents events, TimeSpan deltaInterval, int deltaMaxChars)
{
    private readonly Lock _gate = new();
    private readonly StringBuilder _text = new();
    private readonly StringBuilder _pending = new();
    private readonly Stopwatch _sinceFlush = Stopwatch.StartNew();
    private long _lastSeq = firstSeq - 1;

    public ChatRequested Request => request;

    public long FirstSeq => firstSeq;

    public string Text
    {
        get
        {
            lock (_gate)
            {
                return _text.ToString();
            }
        }
    }

    /// <summary>The text already handed to the event publisher and the seq of the last event, read together.</summary>
    public (string Text, long LastSeq) Published()
    {
        lock (_gate)
        {
            return (_text.ToString(0, _text.Length - _pending.Length), _lastSeq);
        }
    }

    public long NextSeq()
    {
        lock (_gate)
        {
            return ++_lastSeq;
        }
    }

    public Task StartedAsync(CancellationToken cancellationToken) => events.StartedAsync(request, NextSeq(), cancellationToken);

    public async Task AppendAsync(string? text, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(text))
        {
            return;
        }

        bool due;
        lock (_gate)
        {
            _text.Append(text);
            _pending.Append(text);
            due = _pending.Length >= deltaMaxChars || _sinceFlush.Elapsed >= deltaInterval;
        }

        if (due)
        {
            await FlushAsync(cancellationToken);
        }
    }

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        string delta;
        long seq;
        lock (_gate)
        {
            if (_pending.Length == 0)
            {
                return;
            }

            delta = _pending.ToString();
            _pending.Clear();
            _sinceFlush.Restart();
            seq = ++_lastSeq;
        }

        await events.DeltaAsync(request, seq, delta, cancellationToken);
        lock (_gate)
        {
            // The interval runs from the moment the broker confirmed the delta, not from when it was sent. When the broker
            // is slow to confirm (the machine is saturated), deltas grow instead of multiplying: measured on 2 cores with
            // 1,000 turns streaming, counting from the send made a delta of nearly every token (190 of 200), and that
            // extra traffic was what kept the machine saturated.
            _sinceFlush.Restart();
        }
    }

    public async Task ToolAsync(string tool, string status)
    {
        // Text before the tool call goes out first, so clients see events in the order they happened.
        await FlushAsync(CancellationToken.None);
        await events.ToolAsync(request, NextSeq(), tool, status, CancellationToken.None);
    }
}
