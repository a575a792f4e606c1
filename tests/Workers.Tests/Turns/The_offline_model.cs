using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel.ChatCompletion;
using Workers.Worker.Memory;
using Workers.Worker.Model;

namespace Workers.Tests.Turns;

/// <summary>The default model: deterministic, no network, and it can only know what the worker handed it.</summary>
public sealed class The_offline_model
{
    private static readonly OfflineChatModel Model = new(Options.Create(new ModelOptions
    {
        Offline = new OfflineModelOptions { Tokens = 12, TokenDelay = TimeSpan.Zero },
    }));

    private static ChatHistory Chat(string system, IEnumerable<(string User, string Reply)> turns, string message)
    {
        var chat = new ChatHistory(system);
        foreach (var (user, reply) in turns)
        {
            chat.AddUserMessage(user);
            chat.AddAssistantMessage(reply);
        }

        chat.AddUserMessage(message);
        return chat;
    }

    private static async Task<(string Text, int Chunks)> ReplyAsync(ChatHistory history)
    {
        var chunks = await Model.GetStreamingChatMessageContentsAsync(history).ToListAsync();
        return (string.Concat(chunks.Select(c => c.Content)), chunks.Count);
    }

    [Fact]
    public async Task Should_give_the_same_reply_to_the_same_history()
    {
        var first = await ReplyAsync(Chat("system", [("hello", "hi")], "how are you?"));
        Assert.Equal(first, await ReplyAsync(Chat("system", [("hello", "hi")], "how are you?")));
        Assert.StartsWith("You said: \"how are you?\". This is reply 2 in this session.", first.Text, StringComparison.Ordinal);
        Assert.Equal(12, first.Chunks);
    }

    [Fact]
    public async Task Should_say_so_when_there_is_no_earlier_message()
    {
        var (text, _) = await ReplyAsync(Chat("system", [], "What did I say before?"));
        Assert.StartsWith("You have not said anything before in this session.", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_answer_what_was_said_before_from_the_history_it_was_handed()
    {
        var (text, _) = await ReplyAsync(Chat("system", [("my cat is Tom", "ok"), ("I like tea", "ok")], "what did I say before?"));
        Assert.StartsWith("Before this, you said: \"my cat is Tom\" | \"I like tea\".", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Its_summary_keeps_the_users_messages_cut_short_the_first_ones_and_the_latest()
    {
        var memory = Memory(contextWindow: 100_000);
        var turns = Enumerable.Range(1, 45).Select(i => new HistoryTurn(i, $"message {i} " + new string('x', 100), $"reply {i}", null)).ToList();
        var plan = new MemoryPlan(null, turns, [], 0, 1000, 0);
        var (summary, _, _, _) = await memory.FoldAsync(plan, CancellationToken.None);
        var lines = summary.Summary.Split('\n');
        Assert.Equal("Earlier, the user said:", lines[0]);
        Assert.Equal(41, lines.Length);
        Assert.Equal("- message 1 " + new string('x', 70), lines[1]);
        Assert.Equal("- message 5 " + new string('x', 70), lines[5]);
        Assert.StartsWith("- message 11 ", lines[6], StringComparison.Ordinal);
        Assert.StartsWith("- message 45 ", lines[^1], StringComparison.Ordinal);
        Assert.Equal(45, summary.ThroughTurn);
        Assert.Equal(summary, (await memory.FoldAsync(plan, CancellationToken.None)).Memory);

        // Folding again keeps what the old summary said first.
        var more = new MemoryPlan(summary, [new HistoryTurn(46, "message 46", "reply", null)], [], 0, 1000, 0);
        var next = (await memory.FoldAsync(more, CancellationToken.None)).Memory;
        Assert.StartsWith("Earlier, the user said:\n- message 1 ", next.Summary, StringComparison.Ordinal);
        Assert.EndsWith("- message 46", next.Summary, StringComparison.Ordinal);

        // A turn given the summary answers about the first message it no longer has as a turn.
        var (text, _) = await ReplyAsync(memory.Build([new HistoryTurn(47, "hello", "hi", null)], next, "What was my first message?"));
        Assert.StartsWith($"Your first message in this session was: \"message 1 {new string('x', 70)}\".", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_prompt_under_the_threshold_keeps_every_turn_and_one_over_it_folds_the_oldest_whole_turns()
    {
        var memory = Memory(contextWindow: 2000);
        var turns = Enumerable.Range(1, 15).Select(i => new HistoryTurn(i, "word " + string.Join(' ', Enumerable.Repeat("w", 120)), "ok", null)).ToList();
        var few = memory.Plan(turns.Take(3).ToList(), null, "now");
        Assert.Empty(few.Fold);
        Assert.Equal(3, few.Keep.Count);
        Assert.InRange(few.PromptTokens, 3 * 120, 3 * 140);

        // 15 turns of about 130 tokens pass 90 % of 2,000 with the 500-token reserve: the oldest go, down to 60 %.
        var many = memory.Plan(turns, null, "now");
        Assert.Equal(turns.Take(many.Fold.Count), many.Fold);
        Assert.Equal(turns.Skip(many.Fold.Count), many.Keep);
        Assert.NotEmpty(many.Fold);
        Assert.NotEmpty(many.Keep);
        Assert.InRange(many.PromptTokens + 500, 0, 2000 * 60 / 100);
        Assert.Equal(200, many.SummaryBudget);
        Assert.Equal(many.Fold.Sum(t => TokenCount.Turn("o200k_base", t.User, t.Reply)), many.FoldTokens);

        // Stored counts are used as they are (no recount): a turn said to be huge folds everything before the message.
        var huge = memory.Plan([turns[0] with { Tokens = 5000 }], null, "now");
        Assert.Single(huge.Fold);
        Assert.Empty(huge.Keep);
    }

    private static ConversationMemory Memory(int contextWindow)
    {
        var options = Options.Create(new ModelOptions
        {
            SystemPrompt = "be nice",
            Offline = new OfflineModelOptions { Tokens = 1, TokenDelay = TimeSpan.Zero, ContextWindow = contextWindow, OutputReserve = 500 },
        });
        return new ConversationMemory(new OfflineChatModel(options), options);
    }
}
