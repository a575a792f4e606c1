using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel.ChatCompletion;
using Workers.Worker.Model;
using Workers.Worker.Turns;

namespace Workers.Tests.Turns;

/// <summary>The default model: deterministic, no network, and it can only know what the worker handed it.</summary>
public sealed class The_offline_model
{
    private static readonly OfflineChatModel Model = new(Options.Create(new ModelOptions
    {
        Offline = new OfflineModelOptions { Tokens = 12, TokenDelay = TimeSpan.Zero },
    }));

    private static async Task<(string Text, int Chunks)> ReplyAsync(ChatHistory history)
    {
        var chunks = await Model.GetStreamingChatMessageContentsAsync(history).ToListAsync();
        return (string.Concat(chunks.Select(c => c.Content)), chunks.Count);
    }

    [Fact]
    public async Task Should_give_the_same_reply_to_the_same_history()
    {
        var history = TurnHistory.Build("system", [("hello", "hi")], "how are you?", 10_000);
        var first = await ReplyAsync(history);
        Assert.Equal(first, await ReplyAsync(TurnHistory.Build("system", [("hello", "hi")], "how are you?", 10_000)));
        Assert.StartsWith("You said: \"how are you?\". This is reply 2 in this session.", first.Text, StringComparison.Ordinal);
        Assert.Equal(12, first.Chunks);
    }

    [Fact]
    public async Task Should_say_so_when_there_is_no_earlier_message()
    {
        var (text, _) = await ReplyAsync(TurnHistory.Build("system", [], "What did I say before?", 10_000));
        Assert.StartsWith("You have not said anything before in this session.", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_answer_what_was_said_before_from_the_history_it_was_handed()
    {
        var (text, _) = await ReplyAsync(TurnHistory.Build("system", [("my cat is Tom", "ok"), ("I like tea", "ok")], "what did I say before?", 10_000));
        Assert.StartsWith("Before this, you said: \"my cat is Tom\" | \"I like tea\".", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_history_window_keeps_the_newest_turns_within_the_budget_and_drops_the_oldest()
    {
        var turns = new List<(string User, string Reply)> { ("first", "11111"), ("second", "22222"), ("third", "33333") };
        var history = TurnHistory.Build("be nice", turns, "now", budgetChars: 22);
        Assert.Equal(
            [(AuthorRole.System, "be nice"), (AuthorRole.User, "second"), (AuthorRole.Assistant, "22222"), (AuthorRole.User, "third"),
             (AuthorRole.Assistant, "33333"), (AuthorRole.User, "now")],
            history.Select(m => (m.Role, m.Content)));
        Assert.Equal(2, TurnHistory.Build("s", turns, "now", budgetChars: 0).Count);
        Assert.Equal(8, TurnHistory.Build("s", turns, "now", budgetChars: 1000).Count);
    }
}
