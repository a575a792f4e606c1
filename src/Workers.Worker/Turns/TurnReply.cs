using System.Diagnostics;
using System.Text;
using Workers.Contracts;
using Workers.Worker.Memory;

namespace Workers.Worker.Turns;

/// <summary>
/// The events of one turn attempt, numbered from the block of sequence numbers the attempt reserved. Reply text is
/// coalesced: a delta goes out when <c>DeltaMaxChars</c> characters are pending or <c>DeltaInterval</c> has passed
/// since the previous delta was confirmed. Once <paramref name="fenced"/> says the worker lost the partition, the
/// attempt publishes nothing more: the next owner runs the request again with higher seqs, and a session's seq on the
/// wire must only grow. The text still accumulates, for the commit the epoch fence then refuses.
/// </summary>
public sealed class TurnReply(ChatRequested request, long firstSeq, TurnEvents events, TimeSpan deltaInterval, int deltaMaxChars,
    Func<bool>? fenced = null, Guid? replaces = null)
{
    private readonly Lock _gate = new();
    private readonly StringBuilder _text = new();
    private readonly StringBuilder _pending = new();
    private readonly List<Workers.Worker.Tools.ToolCall> _toolCalls = [];
    private readonly Stopwatch _sinceFlush = Stopwatch.StartNew();
    private long _lastSeq = firstSeq - 1;
    private int _withheld;
    private EventPublishTimeoutException? _toolEventFailure;

    public ChatRequested Request => request;

    public long FirstSeq => firstSeq;

    /// <summary>The request whose turn this one replaces (regenerate, edit).</summary>
    public Guid? Replaces => replaces;

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

    /// <summary>The seq the final event will carry, once the stream is over. Not taken from <see cref="Published"/>'s
    /// counter: a resuming client asks for progress while the turn commits, and a snapshot at the final event's seq
    /// made the notifier drop that event as already seen (the client never saw its turn complete).</summary>
    public long FinalSeq()
    {
        lock (_gate)
        {
            return _lastSeq + 1;
        }
    }

    /// <summary>Events not published because the partition was lost while this attempt ran.</summary>
    public int Withheld => Volatile.Read(ref _withheld);

    /// <summary>The worker lost the partition while this attempt ran: it speaks for the session no more (no events, no
    /// progress answers to a resuming client).</summary>
    public bool IsFenced => fenced?.Invoke() == true;

    public Task StartedAsync(TurnMemory memory, CancellationToken cancellationToken) =>
        Fenced() ? Task.CompletedTask : events.StartedAsync(request, NextSeq(), memory, replaces, cancellationToken);

    public async Task AppendAsync(string? text, CancellationToken cancellationToken)
    {
        ThrowIfToolEventFailed();
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
        ThrowIfToolEventFailed();
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
            if (Fenced())
            {
                return;
            }

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

    /// <summary>The tool calls of this attempt that ended, in order: kept with the turn.</summary>
    public IReadOnlyList<Workers.Worker.Tools.ToolCall> ToolCalls
    {
        get
        {
            lock (_gate)
            {
                return [.. _toolCalls];
            }
        }
    }

    public void Record(Workers.Worker.Tools.ToolCall call)
    {
        lock (_gate)
        {
            _toolCalls.Add(call);
        }
    }

    public async Task ToolAsync(string tool, string callId, string status, double? durationMs)
    {
        try
        {
            // Text before the tool call goes out first, so clients see events in the order they happened.
            await FlushAsync(CancellationToken.None);
            if (!Fenced())
            {
                await events.ToolAsync(request, NextSeq(), tool, callId, status, durationMs, CancellationToken.None);
            }
        }
        catch (EventPublishTimeoutException e)
        {
            // Thrown here it would reach Semantic Kernel, which hands any tool exception to the model as the tool's result
            // and carries on: kept, and thrown from the stream's next step, so the turn is run again.
            _toolEventFailure ??= e;
        }
    }

    private void ThrowIfToolEventFailed()
    {
        if (_toolEventFailure is { } failure)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    private bool Fenced()
    {
        if (!IsFenced)
        {
            return false;
        }

        Interlocked.Increment(ref _withheld);
        return true;
    }
}
