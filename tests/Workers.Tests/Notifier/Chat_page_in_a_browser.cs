using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Notifier;

/// <summary>
/// The notifier's chat page in a real headless Chromium (Debian's, at /usr/bin/chromium; test.sh installs it), driven by
/// Playwright, against the whole system: a worker whose offline model streams slowly, and the notifier in Development.
/// </summary>
[Collection("worker pools")]
public sealed class Chat_page_in_a_browser(ServicesFixture services)
{
    private const string Chromium = "/usr/bin/chromium";

    /// <summary>Replies of 40 tokens 50 ms apart: 2 s of streaming.</summary>
    private static readonly Dictionary<string, string> SlowModel = new()
    {
        ["Llm__Offline__Tokens"] = "40",
        ["Llm__Offline__TokenDelay"] = "00:00:00.050",
    };

    /// <summary>Replies of 100 tokens 100 ms apart: 10 s, time enough to act while one streams.</summary>
    private static readonly Dictionary<string, string> SlowerModel = new()
    {
        ["Llm__Offline__Tokens"] = "100",
        ["Llm__Offline__TokenDelay"] = "00:00:00.100",
    };

    private static void Report(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    [Fact]
    public async Task A_user_signs_in_starts_a_chat_and_watches_the_reply_stream_in_token_by_token()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services, SlowModel);
        await using var _ = pool;
        await using var browser = await Browser.OpenAsync(notifier.BaseAddress);
        var page = browser.Page;

        await SignInAsync(page, "alice");
        await page.GetByTestId("new-session").ClickAsync();
        await Assertions.Expect(page.GetByTestId("session-list").GetByTestId("session")).ToHaveCountAsync(1);
        await Assertions.Expect(page.GetByTestId("send")).ToBeEnabledAsync();

        await page.GetByTestId("message-input").FillAsync("remember colour = blue");
        await page.GetByTestId("message-input").PressAsync("Enter");

        await Assertions.Expect(page.GetByTestId("messages").GetByTestId("user")).ToHaveTextAsync("remember colour = blue");
        var assistant = page.GetByTestId("messages").GetByTestId("assistant");
        await Assertions.Expect(assistant).ToHaveCountAsync(1);
        await Assertions.Expect(page.GetByTestId("stop")).ToBeVisibleAsync();

        var seen = await WatchReplyAsync(page, TimeSpan.FromSeconds(30));
        var streaming = seen.Where(s => s.Status == "streaming" && s.Text.Length > 0).Select(s => s.Text).Distinct().ToList();
        Report($"observed {streaming.Count} growing texts while streaming: {string.Join(" | ", streaming.Select(s => s.Length))}");
        Assert.True(streaming.Count >= 2, $"the reply should grow in at least two steps before completing; saw {streaming.Count}");
        for (var i = 1; i < streaming.Count; i++)
        {
            Assert.True(
                streaming[i].Length > streaming[i - 1].Length && streaming[i].StartsWith(streaming[i - 1], StringComparison.Ordinal),
                $"each observation extends the previous one: '{streaming[i - 1]}' then '{streaming[i]}'");
        }

        var final = seen[^1];
        Assert.Equal("complete", final.Status);
        Assert.StartsWith("Noted: colour.", final.Text, StringComparison.Ordinal);
        Assert.StartsWith(streaming[^1], final.Text, StringComparison.Ordinal);
        Assert.Equal(40, final.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        await Assertions.Expect(assistant).ToHaveAttributeAsync("data-status", "complete");
        await Assertions.Expect(assistant.GetByTestId("tool")).ToHaveTextAsync("notes.remember ✓");
        await Assertions.Expect(page.GetByTestId("stop")).ToBeHiddenAsync();
        await Assertions.Expect(page.GetByTestId("error")).ToBeHiddenAsync();
        // The new chat is named after its first message.
        await Assertions.Expect(page.GetByTestId("session-title")).ToHaveTextAsync("remember colour = blue");

        // The tool call is kept with the turn: a reload shows it from the history.
        await page.ReloadAsync();
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync("alice");
        await Assertions.Expect(page.GetByTestId("messages").GetByTestId("assistant").GetByTestId("tool"))
            .ToHaveTextAsync("notes.remember ✓", new() { Timeout = 15_000 });

        var screenshot = Path.Combine(Repository.Root, "TestResults", "screenshots", "chat.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
        Report($"screenshot: {screenshot}");

        Assert.Empty(browser.Problems);
    }

    [Fact]
    public async Task The_usage_gauge_counts_a_turn_and_a_chats_prompt_temperature_and_model_are_saved()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services,
            new Dictionary<string, string> { ["Llm__Offline__Tokens"] = "6", ["Page__Models__0"] = "big", ["Page__Models__1"] = "small" });
        await using var _ = pool;
        await using var browser = await Browser.OpenAsync(notifier.BaseAddress);
        var page = browser.Page;

        await SignInAsync(page, "carol");
        var usage = page.GetByTestId("usage");
        await Assertions.Expect(usage).ToContainTextAsync("today 0 tokens");
        await page.GetByTestId("new-session").ClickAsync();
        await Assertions.Expect(page.GetByTestId("send")).ToBeEnabledAsync();
        await page.GetByTestId("message-input").FillAsync("hello");
        await page.GetByTestId("message-input").PressAsync("Enter");
        await Assertions.Expect(page.GetByTestId("stop")).ToBeHiddenAsync(new() { Timeout = 30_000 });
        // Refreshed when the turn ends: the tokens it spent are counted.
        await Assertions.Expect(usage).Not.ToContainTextAsync("today 0 tokens", new() { Timeout = 10_000 });

        await page.GetByTestId("session-settings").Locator("summary").ClickAsync();
        await page.GetByTestId("settings-prompt").FillAsync("Be brief.");
        await page.GetByTestId("settings-temperature").FillAsync("0.5");
        // The models the deployment lists are offered; one is chosen.
        Assert.Equal(["big", "small"], await page.Locator("#model-names option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)"));
        await page.GetByTestId("settings-model").FillAsync("big");
        await page.GetByTestId("settings-tools").FillAsync("web, files");
        await page.GetByTestId("settings-save").ClickAsync();
        using var http = notifier.Http("carol");
        JsonElement saved = default;
        for (var deadline = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            saved = (await http.GetFromJsonAsync<JsonElement>(new Uri("/api/sessions", UriKind.Relative)))[0];
            if (saved.TryGetProperty("systemPrompt", out var prompt) && prompt.ValueKind == JsonValueKind.String)
            {
                break;
            }
        }

        Assert.Equal("Be brief.", saved.GetProperty("systemPrompt").GetString());
        Assert.Equal(0.5, saved.GetProperty("temperature").GetDouble());
        Assert.Equal("big", saved.GetProperty("model").GetString());
        Assert.Equal(["web", "files"], saved.GetProperty("tools").EnumerateArray().Select(t => t.GetString()));
        Assert.Empty(browser.Problems);
    }

    [Fact]
    public async Task Regenerate_and_edit_replace_the_last_reply_in_place_and_a_reload_shows_only_the_current_version()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services, new Dictionary<string, string> { ["Llm__Offline__Tokens"] = "6" });
        await using var _ = pool;
        await using var browser = await Browser.OpenAsync(notifier.BaseAddress);
        var page = browser.Page;

        await SignInAsync(page, "erin");
        await page.GetByTestId("new-session").ClickAsync();
        await Assertions.Expect(page.GetByTestId("send")).ToBeEnabledAsync();
        await page.GetByTestId("message-input").FillAsync("hello");
        await page.GetByTestId("message-input").PressAsync("Enter");
        await Assertions.Expect(page.GetByTestId("regenerate")).ToBeVisibleAsync(new() { Timeout = 30_000 });

        await page.GetByTestId("regenerate").ClickAsync();
        await Assertions.Expect(page.GetByTestId("regenerate")).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await Assertions.Expect(page.GetByTestId("user")).ToHaveTextAsync(["hello"]);
        await Assertions.Expect(page.GetByTestId("assistant")).ToHaveCountAsync(1);

        await page.GetByTestId("edit-last").ClickAsync();
        await Assertions.Expect(page.GetByTestId("message-input")).ToHaveValueAsync("hello");
        await page.GetByTestId("message-input").FillAsync("hello again");
        await page.GetByTestId("message-input").PressAsync("Enter");
        await Assertions.Expect(page.GetByTestId("user")).ToHaveTextAsync(["hello again"]);
        await Assertions.Expect(page.GetByTestId("regenerate")).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await Assertions.Expect(page.GetByTestId("assistant")).ToHaveCountAsync(1);
        await Assertions.Expect(page.GetByTestId("assistant")).ToContainTextAsync("hello again");

        // Every version is kept; the current one is what a reload shows.
        using var http = notifier.Http("erin");
        var session = (await http.GetFromJsonAsync<JsonElement>(new Uri("/api/sessions", UriKind.Relative)))[0].GetProperty("id").GetString();
        var versions = await http.GetFromJsonAsync<JsonElement>(new Uri($"/api/sessions/{session}/turns?superseded=true", UriKind.Relative));
        Assert.Equal(["hello 2", "hello 3", "hello again -"], versions.EnumerateArray().Select(t =>
            $"{t.GetProperty("userText").GetString()} {(t.GetProperty("supersededBy").ValueKind == JsonValueKind.Null ? "-" : t.GetProperty("supersededBy").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture))}"));
        await page.ReloadAsync();
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync("erin");
        await Assertions.Expect(page.GetByTestId("messages").GetByTestId("user")).ToHaveTextAsync(["hello again"]);
        await Assertions.Expect(page.GetByTestId("assistant")).ToHaveCountAsync(1);
        Assert.Empty(browser.Problems);
    }

    [Fact]
    public async Task Stop_keeps_the_partial_reply_and_a_reload_shows_the_conversation_from_history()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services, SlowerModel);
        await using var _ = pool;
        await using var browser = await Browser.OpenAsync(notifier.BaseAddress);
        var page = browser.Page;

        await SignInAsync(page, "bob");
        await page.GetByTestId("new-session").ClickAsync();
        await Assertions.Expect(page.GetByTestId("send")).ToBeEnabledAsync();
        await page.GetByTestId("message-input").FillAsync("hello there");
        await page.GetByTestId("send").ClickAsync();
        var replies = page.GetByTestId("messages").GetByTestId("assistant");
        await Assertions.Expect(replies.Nth(0)).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 60_000 });

        await page.GetByTestId("message-input").FillAsync("and now a long answer please");
        await page.GetByTestId("message-input").PressAsync("Enter");
        var second = replies.Nth(1);
        await Assertions.Expect(second.GetByTestId("reply-text")).Not.ToBeEmptyAsync(new() { Timeout = 30_000 });
        await page.GetByTestId("stop").ClickAsync();
        await Assertions.Expect(second).ToHaveAttributeAsync("data-status", "cancelled", new() { Timeout = 30_000 });
        await Assertions.Expect(second).ToContainTextAsync("(stopped)");
        var partial = await second.GetByTestId("reply-text").TextContentAsync() ?? "";
        Assert.NotEmpty(partial);
        Assert.True(partial.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length < 100, $"stopped before the end: '{partial}'");
        await Assertions.Expect(page.GetByTestId("stop")).ToBeHiddenAsync();

        // A reload keeps the sign-in (session storage) and rebuilds the conversation from the REST history.
        await page.ReloadAsync();
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync("bob");
        await Assertions.Expect(page.GetByTestId("messages").GetByTestId("user"))
            .ToHaveTextAsync(new[] { "hello there", "and now a long answer please" });
        await Assertions.Expect(replies).ToHaveCountAsync(2);
        await Assertions.Expect(replies.Nth(0)).ToHaveAttributeAsync("data-status", "complete");
        await Assertions.Expect(replies.Nth(0)).ToContainTextAsync("You said: \"hello there\".");
        await Assertions.Expect(replies.Nth(1)).ToHaveAttributeAsync("data-status", "cancelled");
        await Assertions.Expect(replies.Nth(1).GetByTestId("reply-text")).ToHaveTextAsync(partial);
        await Assertions.Expect(replies.Nth(1)).ToContainTextAsync("(stopped)");

        Assert.Empty(browser.Problems);
    }

    [Fact]
    public async Task Chats_are_renamed_and_deleted_and_a_refusal_from_the_hub_is_shown()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        await using var browser = await Browser.OpenAsync(notifier.BaseAddress);
        var page = browser.Page;
        page.Dialog += (_, dialog) => dialog.AcceptAsync(); // confirms the deletion
        using var carol = notifier.Http("carol");

        await SignInAsync(page, "carol");
        var chats = page.GetByTestId("session-list").GetByTestId("session");
        await page.GetByTestId("new-session").ClickAsync();
        await Assertions.Expect(chats).ToHaveCountAsync(1);
        await page.GetByTestId("new-session").ClickAsync();
        await Assertions.Expect(chats).ToHaveCountAsync(2);
        await Assertions.Expect(page.GetByTestId("message-input")).ToBeFocusedAsync();

        await page.GetByTestId("rename-session").ClickAsync();
        await page.GetByTestId("title-input").FillAsync("Holiday plans");
        await page.GetByTestId("title-input").PressAsync("Enter");
        await Assertions.Expect(page.GetByTestId("session-title")).ToHaveTextAsync("Holiday plans");
        await Assertions.Expect(chats.Filter(new() { HasText = "Holiday plans" })).ToHaveCountAsync(1);
        var renamed = await chats.Filter(new() { HasText = "Holiday plans" }).GetAttributeAsync("data-session-id");
        var listed = await carol.GetFromJsonAsync<JsonElement>("/api/sessions", TestContext.Current.CancellationToken);
        Assert.Contains(listed.EnumerateArray(),
            s => s.GetProperty("id").GetString() == renamed && s.GetProperty("title").GetString() == "Holiday plans");

        await page.GetByTestId("delete-session").ClickAsync();
        await Assertions.Expect(chats).ToHaveCountAsync(1);
        await Assertions.Expect(chats.Filter(new() { HasText = "Holiday plans" })).ToHaveCountAsync(0);
        listed = await carol.GetFromJsonAsync<JsonElement>("/api/sessions", TestContext.Current.CancellationToken);
        Assert.DoesNotContain(listed.EnumerateArray(), s => s.GetProperty("id").GetString() == renamed);

        // The open chat is deleted elsewhere: the hub refuses the next message with its code, the page shows it and
        // gives the text back.
        var remaining = await chats.GetAttributeAsync("data-session-id");
        await Assertions.Expect(chats).ToHaveAttributeAsync("aria-current", "true");
        (await carol.DeleteAsync($"/api/sessions/{remaining}", TestContext.Current.CancellationToken)).EnsureSuccessStatusCode();
        await page.GetByTestId("message-input").FillAsync("anyone there?");
        await page.GetByTestId("send").ClickAsync();
        await Assertions.Expect(page.GetByTestId("error")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByTestId("error")).ToContainTextAsync("session_not_found: ");
        await Assertions.Expect(page.GetByTestId("message-input")).ToHaveValueAsync("anyone there?");
        await Assertions.Expect(page.GetByTestId("messages").GetByTestId("assistant")).ToHaveCountAsync(0);

        await page.GetByTestId("sign-out").ClickAsync();
        await Assertions.Expect(page.GetByTestId("sign-in")).ToBeVisibleAsync();
        await Assertions.Expect(chats).ToHaveCountAsync(0);

        Assert.Empty(browser.Problems);
    }

    [Fact]
    public async Task A_reply_streaming_while_the_notifier_restarts_resumes_where_the_page_left_off()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services, SlowerModel);
        await using var _ = pool;
        await using var browser = await Browser.OpenAsync(notifier.BaseAddress);
        var page = browser.Page;

        await SignInAsync(page, "dave");
        var reply = await StartLongReplyAsync(page);

        notifier.Process.Kill();
        await notifier.Process.WaitForExitAsync(TimeSpan.FromSeconds(10));
        var before = await reply.GetByTestId("reply-text").TextContentAsync() ?? "";
        await Assertions.Expect(page.GetByTestId("connection-state")).Not.ToHaveAttributeAsync("data-state", "connected");
        await pool.StartNotifierAsync(new Dictionary<string, string> { ["Urls"] = notifier.BaseAddress.ToString().TrimEnd('/') });

        // The page reconnects by itself, subscribes again after the last seq it saw, and gets the rest exactly once.
        await Assertions.Expect(page.GetByTestId("connection-state")).ToHaveAttributeAsync("data-state", "connected",
            new() { Timeout = 30_000 });
        await ExpectResumedAsync(reply, before, "restart");
        await Assertions.Expect(page.GetByTestId("error")).ToBeHiddenAsync();
        // While the notifier was down the browser logged refused connections; nothing may have thrown in the page.
        Assert.DoesNotContain(browser.Problems, p => p.StartsWith("page error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task When_its_notifier_dies_the_page_moves_to_the_other_and_the_reply_resumes_with_no_gap_and_no_duplicate()
    {
        var pool = await WorkersSystem.CreateAsync(services.Services, settings: SlowerModel);
        await using var _ = pool;
        await pool.StartWorkerAsync();
        var (first, second) = ($"http://127.0.0.1:{WorkersSystem.FreePort()}", $"http://127.0.0.1:{WorkersSystem.FreePort()}");
        Dictionary<string, string> Settings(string own, string other) => new()
        {
            ["Urls"] = own, ["Page__NotifierUrls__0"] = first, ["Page__NotifierUrls__1"] = second, ["Limits__AllowedOrigins__0"] = other,
        };
        var dying = await pool.StartNotifierAsync(Settings(first, second));
        await pool.StartNotifierAsync(Settings(second, first));
        await using var browser = await Browser.OpenAsync(new Uri(first));
        var page = browser.Page;

        await SignInAsync(page, "erin");
        await Assertions.Expect(page.GetByTestId("connection-state")).ToHaveAttributeAsync("data-notifier", first);
        var reply = await StartLongReplyAsync(page);

        dying.Process.Kill();
        await dying.Process.WaitForExitAsync(TimeSpan.FromSeconds(10));
        var before = await reply.GetByTestId("reply-text").TextContentAsync() ?? "";

        // Not restarted: the page goes to the other notifier, subscribes after the last seq it saw and gets the rest once.
        await Assertions.Expect(page.GetByTestId("connection-state")).ToHaveAttributeAsync("data-notifier", second, new() { Timeout = 30_000 });
        await Assertions.Expect(page.GetByTestId("connection-state")).ToHaveAttributeAsync("data-state", "connected", new() { Timeout = 30_000 });
        await ExpectResumedAsync(reply, before, "failover");

        // The page works on: a second message goes through the other notifier and is answered.
        await page.GetByTestId("message-input").FillAsync("and then?");
        await page.GetByTestId("message-input").PressAsync("Enter");
        await Assertions.Expect(reply).ToHaveCountAsync(2);
        await Assertions.Expect(reply.Nth(1)).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 30_000 });
        await Assertions.Expect(page.GetByTestId("error")).ToBeHiddenAsync();
        Assert.DoesNotContain(browser.Problems, p => p.StartsWith("page error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_operator_opens_the_admin_page_sees_the_pool_and_replays_a_parked_request()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        await pool.WaitForBalanceAsync(1, TimeSpan.FromSeconds(30));
        var (session, replayed, discarded) = await Operations.Operator_view.SeedParkedAsync(pool);
        await using var browser = await Browser.OpenAsync(notifier.BaseAddress);
        var page = browser.Page;
        page.Dialog += (_, dialog) => dialog.AcceptAsync();

        // A user's token opens nothing.
        await page.GotoAsync("/admin.html");
        await page.GetByTestId("token").FillAsync(NotifierProcess.Token("alice"));
        await page.GetByTestId("use-token").ClickAsync();
        await Assertions.Expect(page.GetByTestId("error-text")).ToContainTextAsync("does not carry the admin role");
        await Assertions.Expect(page.GetByTestId("members")).ToBeHiddenAsync();

        await page.GetByTestId("user-id").FillAsync("ops");
        await page.GetByTestId("dev-sign-in").ClickAsync();
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync("ops");
        await Assertions.Expect(page.GetByTestId("members").GetByTestId("member")).ToHaveCountAsync(1);
        await Assertions.Expect(page.GetByTestId("members")).ToContainTextAsync("w1");
        await Assertions.Expect(page.GetByTestId("partitions").GetByTestId("partition")).ToHaveCountAsync(pool.Partitions);
        var parked = page.GetByTestId("parked").GetByTestId("parked-request");
        await Assertions.Expect(parked).ToHaveCountAsync(2);
        await Assertions.Expect(page.GetByTestId("parked")).Not.ToContainTextAsync("hello again");

        await parked.Filter(new() { HasText = replayed.ToString() }).GetByTestId("replay").ClickAsync();
        await Assertions.Expect(parked).ToHaveCountAsync(1);
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == replayed && x.Type == "TurnCompleted"), TimeSpan.FromSeconds(20),
            "the replayed request's reply");
        await parked.Filter(new() { HasText = discarded.ToString() }).GetByTestId("discard").ClickAsync();
        await Assertions.Expect(page.GetByTestId("no-parked")).ToBeVisibleAsync();
        Assert.Equal(1L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE session_id = '{session}'"));
        await Assertions.Expect(page.GetByTestId("error")).ToBeHiddenAsync();
        // The refused user token is the one expected console error (a 403 the browser logs).
        Assert.DoesNotContain(browser.Problems, p => !p.Contains("403", StringComparison.Ordinal));
    }

    /// <summary>Starts a chat and a 10 s reply in it; returns once the reply streams.</summary>
    private static async Task<ILocator> StartLongReplyAsync(IPage page)
    {
        await page.GetByTestId("new-session").ClickAsync();
        await Assertions.Expect(page.GetByTestId("send")).ToBeEnabledAsync();
        await page.GetByTestId("message-input").FillAsync("tell me everything");
        await page.GetByTestId("message-input").PressAsync("Enter");
        var reply = page.GetByTestId("messages").GetByTestId("assistant");
        await Assertions.Expect(reply.GetByTestId("reply-text")).ToContainTextAsync("This is reply 1", new() { Timeout = 30_000 });
        return reply;
    }

    /// <summary>The reply completed as one, starting with what the page showed <paramref name="before"/> the fault: no
    /// gap, no duplicate.</summary>
    private static async Task ExpectResumedAsync(ILocator reply, string before, string fault)
    {
        await Assertions.Expect(reply).ToHaveAttributeAsync("data-status", "complete", new() { Timeout = 30_000 });
        var after = await reply.GetByTestId("reply-text").TextContentAsync() ?? "";
        Report($"before the {fault}: {before.Length} characters; after: {after.Length}");
        Assert.StartsWith(before, after, StringComparison.Ordinal);
        Assert.StartsWith("You said: \"tell me everything\". This is reply 1 in this session.", after, StringComparison.Ordinal);
        Assert.Equal(100, after.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        await Assertions.Expect(reply).ToHaveCountAsync(1);
    }

    private static async Task SignInAsync(IPage page, string userId)
    {
        await page.GotoAsync("/");
        await page.GetByTestId("user-id").FillAsync(userId);
        await page.GetByTestId("sign-in").ClickAsync();
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(userId);
        await Assertions.Expect(page.GetByTestId("connection-state")).ToHaveAttributeAsync("data-state", "connected");
    }

    /// <summary>Samples the last reply's status and text every 50 ms until it is no longer streaming.</summary>
    private static async Task<List<(string Status, string Text)>> WatchReplyAsync(IPage page, TimeSpan timeout)
    {
        var seen = new List<(string Status, string Text)>();
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var sample = await page.EvaluateAsync<JsonElement>(
                """
                () => {
                  const replies = document.querySelectorAll('[data-testid=messages] [data-testid=assistant]');
                  const last = replies[replies.length - 1];
                  return { status: last.dataset.status, text: last.querySelector('[data-testid=reply-text]').textContent };
                }
                """);
            var status = sample.GetProperty("status").GetString() ?? "";
            seen.Add((status, sample.GetProperty("text").GetString() ?? ""));
            if (status != "streaming")
            {
                return seen;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"the reply was still streaming after {timeout}: '{seen[^1].Text}'");
    }

    /// <summary>Playwright driving Debian's Chromium (never a downloaded browser), with the page's console errors kept.</summary>
    private sealed class Browser : IAsyncDisposable
    {
        private readonly IPlaywright _playwright;
        private readonly IBrowser _browser;

        private Browser(IPlaywright playwright, IBrowser browser, IPage page)
        {
            _playwright = playwright;
            _browser = browser;
            Page = page;
            page.Console += (_, message) =>
            {
                if (message.Type == "error")
                {
                    Problems.Enqueue($"console error: {message.Text} ({message.Location})");
                }
            };
            page.PageError += (_, error) => Problems.Enqueue($"page error: {error}");
        }

        public IPage Page { get; }

        public ConcurrentQueue<string> Problems { get; } = new();

        public static async Task<Browser> OpenAsync(Uri baseAddress)
        {
            Assert.True(File.Exists(Chromium),
                $"{Chromium} is missing: apt-get install -y --no-install-recommends chromium (test.sh does)");
            var playwright = await Playwright.CreateAsync();
            var browser = await playwright.Chromium.LaunchAsync(new()
            {
                ExecutablePath = Chromium,
                Headless = true,
                // As root, and on a closed network: without the background-networking flags Chromium's own connections fail.
                Args =
                [
                    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                ],
            });
            var context = await browser.NewContextAsync(new()
            {
                BaseURL = baseAddress.ToString(),
                ViewportSize = new() { Width = 1200, Height = 800 },
            });
            context.SetDefaultTimeout(15_000);
            Assertions.SetDefaultExpectTimeout(15_000);
            return new Browser(playwright, browser, await context.NewPageAsync());
        }

        public async ValueTask DisposeAsync()
        {
            await _browser.CloseAsync();
            await _browser.DisposeAsync();
            _playwright.Dispose();
        }
    }
}
