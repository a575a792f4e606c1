using System.Text.Json;
using Workers.Contracts;
using Workers.Notifier.Chat;

namespace Workers.Tests.Notifier;

/// <summary>
/// What a browser's <c>event</c> callback receives: <c>type</c>, then the reply event's own fields in camelCase, then
/// <c>snapshot</c> and <c>sentAt</c> when set. Every reply event type is passed through without a per-type mapping,
/// so a new one needs none. No services needed.
/// </summary>
public sealed class The_browser_event_format
{
    private static readonly Guid Session = Guid.Parse("6f1c3a2e-0000-4000-8000-000000000001");
    private static readonly Guid Request = Guid.Parse("6f1c3a2e-0000-4000-8000-000000000002");

    private static List<string> Names(ClientEvent e) =>
        [.. JsonDocument.Parse(e.Utf8Json).RootElement.EnumerateObject().Select(p => p.Name)];

    [Fact]
    public void Should_carry_the_type_and_every_field_of_each_reply_event()
    {
        var sentAt = new DateTime(2026, 12, 2, 6, 0, 0, DateTimeKind.Utc);
        var completed = new ClientEvent(new TurnCompleted
        {
            SessionId = Session, RequestId = Request, UserId = "alice", Seq = 7, Text = "hi", PromptTokens = 3, CompletionTokens = 1,
            FirstTokenMs = 1.5, TotalMs = 9,
        }) { SentAt = sentAt };
        Assert.Equal(["type", "sessionId", "requestId", "userId", "seq", "text", "promptTokens", "completionTokens", "firstTokenMs", "totalMs", "sentAt"],
            Names(completed));
        var json = JsonDocument.Parse(completed.Utf8Json).RootElement;
        Assert.Equal(("TurnCompleted", Session, "alice", 7L, "hi", sentAt),
            (json.GetProperty("type").GetString(), json.GetProperty("sessionId").GetGuid(), json.GetProperty("userId").GetString(),
                json.GetProperty("seq").GetInt64(), json.GetProperty("text").GetString(), json.GetProperty("sentAt").GetDateTime()));

        var others = new (IReplyEvent, string[])[]
        {
            (new TurnStarted { SessionId = Session, RequestId = Request, UserId = "alice", Seq = 1 }, []),
            (new ReplyDelta { SessionId = Session, RequestId = Request, UserId = "alice", Seq = 2, Text = "x" }, ["text"]),
            (new ToolInvoked { SessionId = Session, RequestId = Request, UserId = "alice", Seq = 3, Tool = "notes.list", Status = "ok", CallId = "c1", DurationMs = 2.5 },
                ["tool", "status", "callId", "durationMs"]),
            (new TurnFailed { SessionId = Session, RequestId = Request, UserId = "alice", Seq = 0, Code = "session_busy", Message = "m" }, ["code", "message"]),
            (new TurnCancelled { SessionId = Session, RequestId = Request, UserId = "alice", Seq = 4, PartialText = "p" }, ["partialText"]),
        };
        foreach (var (replyEvent, fields) in others)
        {
            Assert.Equal(["type", "sessionId", "requestId", "userId", "seq", .. fields], Names(new ClientEvent(replyEvent)));
        }

        // Every reply event of the contract is covered here.
        Assert.Equal(ReplyEvents.Types.Select(t => t.Name).Order(),
            others.Select(o => o.Item1.GetType().Name).Append(nameof(TurnCompleted)).Order());
    }

    [Fact]
    public void Should_mark_a_resumed_turns_text_as_a_snapshot_and_leave_the_flag_out_otherwise()
    {
        var delta = new ReplyDelta { SessionId = Session, RequestId = Request, UserId = "alice", Seq = 9, Text = "the reply so far" };
        Assert.True(JsonDocument.Parse(new ClientEvent(delta) { Snapshot = true }.Utf8Json).RootElement.GetProperty("snapshot").GetBoolean());
        Assert.DoesNotContain("snapshot", Names(new ClientEvent(delta)));
    }
}
