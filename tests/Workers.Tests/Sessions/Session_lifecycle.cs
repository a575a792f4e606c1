using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Notifier.Sessions;
using Workers.Worker.Retention;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Sessions;

/// <summary>What a user does with sessions, as the app role, and what one user cannot do to another's.</summary>
public sealed class Session_lifecycle(ServicesFixture services) : IAsyncLifetime
{
    private TestDatabase _db = null!;
    private NpgsqlDataSource _dataSource = null!;
    private SessionLifecycle _sessions = null!;

    public async ValueTask InitializeAsync()
    {
        _db = await services.CreateDatabaseAsync();
        _dataSource = _db.AppDataSource();
        _sessions = new SessionLifecycle(new SessionStore(_dataSource), NullLogger<SessionLifecycle>.Instance);
    }

    public async ValueTask DisposeAsync()
    {
        await _dataSource.DisposeAsync();
        await _db.DisposeAsync();
    }

    private async Task AddTurnsAsync(Guid session, string owner, int count)
    {
        await _db.ExecuteAsync($"""
            INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status, first_seq, last_seq, started_at)
            SELECT '{session}', n, '{owner}', gen_random_uuid(), 'message ' || n, 'reply ' || n, 'complete', n * 10 + 1, n * 10 + 5, now()
            FROM generate_series(1, {count}) n;
            INSERT INTO workers.session_notes (session_id, key, owner_id, value) VALUES ('{session}', 'k', '{owner}', 'v');
            INSERT INTO workers.inbox (session_id, request_id, owner_id, status) VALUES ('{session}', gen_random_uuid(), '{owner}', 'complete');
            UPDATE workers.sessions SET turn_seq = {count} WHERE id = '{session}';
            """);
    }

    [Fact]
    public async Task A_session_keeps_its_own_prompt_temperature_and_model_validated_and_only_its_owner_changes_them()
    {
        var created = await _sessions.CreateAsync("alice", "pirate", default, "You are a terse pirate.", 0.3);
        Assert.Equal(("You are a terse pirate.", 0.3), (created.SystemPrompt, created.Temperature));
        // Absent fields stay; '' goes back to the deployment's prompt.
        var warmer = await _sessions.UpdateAsync("alice", created.Id, null, default, null, 1.2);
        Assert.Equal(("pirate", "You are a terse pirate.", 1.2), (warmer.Title, warmer.SystemPrompt, warmer.Temperature));
        var plain = await _sessions.UpdateAsync("alice", created.Id, null, default, "", null);
        Assert.Equal(((string?)null, 1.2), (plain.SystemPrompt, plain.Temperature));
        Assert.Equal(0L, await _db.ScalarAsync<long>($"SELECT count(*) FROM workers.sessions WHERE id = '{created.Id}' AND system_prompt IS NOT NULL"));

        foreach (var (prompt, temperature, code) in new (string?, double?, string)[]
                 {
                     (null, 2.5, ErrorCodes.InvalidRequest), (null, -0.1, ErrorCodes.InvalidRequest), (null, double.NaN, ErrorCodes.InvalidRequest),
                     (new string('p', ChatLimits.MaxSystemPromptLength + 1), null, ErrorCodes.TooLarge),
                 })
        {
            var refused = await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.UpdateAsync("alice", created.Id, null, default, prompt, temperature));
            Assert.Equal(code, refused.Code);
            Assert.Equal(code, (await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.CreateAsync("alice", null, default, prompt, temperature))).Code);
        }

        var notBobs = await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.UpdateAsync("bob", created.Id, null, default, "You obey bob.", null));
        Assert.Equal(ErrorCodes.SessionNotFound, notBobs.Code);
        Assert.Equal(1.2, (await _sessions.GetAsync("alice", created.Id, default)).Temperature);

        // The model by name: kept until changed, '' back to the default; a name that cannot be one is refused.
        Assert.Equal("big-1.5_b", (await _sessions.UpdateAsync("alice", created.Id, null, default, model: "big-1.5_b")).Model);
        Assert.Equal("big-1.5_b", (await _sessions.UpdateAsync("alice", created.Id, "renamed", default)).Model);
        foreach (var bad in new[] { "-big", "big model", "x'; DROP TABLE workers.sessions; --", new string('m', 65), "modèle" })
        {
            Assert.Equal(ErrorCodes.InvalidRequest,
                (await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.UpdateAsync("alice", created.Id, null, default, model: bad))).Code);
        }

        Assert.Equal("big-1.5_b", (await _sessions.GetAsync("alice", created.Id, default)).Model);
        Assert.Null((await _sessions.UpdateAsync("alice", created.Id, null, default, model: "")).Model);
        Assert.Equal("small", (await _sessions.CreateAsync("alice", null, default, model: "small")).Model);

        // Tool servers by name: null (the deployment's default set) until chosen, kept, [] for none; bad names refused.
        Assert.Null((await _sessions.GetAsync("alice", created.Id, default)).Tools);
        Assert.Equal(["web", "files"], (await _sessions.UpdateAsync("alice", created.Id, null, default, tools: ["web", "files", "web"])).Tools);
        Assert.Equal(["web", "files"], (await _sessions.UpdateAsync("alice", created.Id, "again", default)).Tools);
        foreach (var bad in new[] { "no-dashes", "1st", "notes.search", new string('t', 33) })
        {
            Assert.Equal(ErrorCodes.InvalidRequest,
                (await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.UpdateAsync("alice", created.Id, null, default, tools: [bad]))).Code);
        }

        Assert.Empty((await _sessions.UpdateAsync("alice", created.Id, null, default, tools: [])).Tools!);
        Assert.Equal(["files"], (await _sessions.CreateAsync("alice", null, default, tools: ["files"])).Tools);
    }

    [Fact]
    public async Task A_user_creates_lists_renames_pages_through_and_deletes_own_sessions()
    {
        var first = await _sessions.CreateAsync("alice", "  first  ", default);
        var second = await _sessions.CreateAsync("alice", null, default);
        await _sessions.CreateAsync("bob", "bob's", default);
        Assert.Equal("first", first.Title);
        Assert.Equal(new[] { first.Id, second.Id }.Order(), (await _sessions.ListAsync("alice", default)).Select(s => s.Id).Order());

        Assert.Equal("renamed", (await _sessions.UpdateAsync("alice", first.Id, "renamed", default)).Title);
        var tooLong = await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.UpdateAsync("alice", first.Id, new string('x', 201), default));
        Assert.Equal(ErrorCodes.TooLarge, tooLong.Code);

        await AddTurnsAsync(first.Id, "alice", 25);
        var page1 = await _sessions.HistoryAsync("alice", first.Id, afterSeq: 0, limit: 10, default);
        var page2 = await _sessions.HistoryAsync("alice", first.Id, afterSeq: page1[^1].LastSeq, limit: 10, default);
        var page3 = await _sessions.HistoryAsync("alice", first.Id, afterSeq: page2[^1].LastSeq, limit: 10, default);
        Assert.Equal(Enumerable.Range(1, 25).Select(n => (long)n), page1.Concat(page2).Concat(page3).Select(t => t.TurnNo));

        await _sessions.DeleteAsync("alice", first.Id, default);
        foreach (var table in new[] { "sessions", "turns", "inbox", "session_notes" })
        {
            var column = table == "sessions" ? "id" : "session_id";
            Assert.Equal(0L, await _db.ScalarAsync<long>($"SELECT count(*) FROM workers.{table} WHERE {column} = '{first.Id}'"));
        }
    }

    [Fact]
    public async Task Another_users_session_and_a_missing_one_give_the_same_session_not_found()
    {
        var alices = await _sessions.CreateAsync("alice", "private", default);
        await AddTurnsAsync(alices.Id, "alice", 2);
        foreach (var id in new[] { alices.Id, Guid.NewGuid() })
        {
            var errors = new[]
            {
                await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.GetAsync("bob", id, default)),
                await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.HistoryAsync("bob", id, 0, 10, default)),
                await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.UpdateAsync("bob", id, "mine now", default)),
                await Assert.ThrowsAsync<ChatErrorException>(() => _sessions.DeleteAsync("bob", id, default)),
            };
            Assert.All(errors, e => Assert.Equal((ErrorCodes.SessionNotFound, "no such session"), (e.Code, e.Message)));
        }

        Assert.Equal("private", (await _sessions.GetAsync("alice", alices.Id, default)).Title);
        Assert.Equal(2, (await _sessions.HistoryAsync("alice", alices.Id, 0, 10, default)).Count);
    }

    [Fact]
    public async Task The_query_filters_still_separate_users_when_the_policies_are_gone()
    {
        var alices = await _sessions.CreateAsync("alice", "a", default);
        var bobs = await _sessions.CreateAsync("bob", "b", default);
        await AddTurnsAsync(alices.Id, "alice", 3);
        await AddTurnsAsync(bobs.Id, "bob", 3);
        foreach (var table in new[] { "sessions", "turns", "inbox", "session_notes" })
        {
            await _db.ExecuteAsync($"ALTER TABLE workers.{table} DISABLE ROW LEVEL SECURITY");
        }

        var store = new SessionStore(_dataSource);
        await using var scope = await store.BeginAsync("alice", alices.Id, default);
        var db = await scope.DbAsync();
        Assert.Equal([alices.Id], await db.Sessions.Select(s => s.Id).ToListAsync());
        Assert.Equal(3, await db.Turns.CountAsync());
        Assert.Equal(1, await db.Notes.CountAsync());
        // The raw table shows both users now: the filters, not the database, kept them apart here.
        Assert.Equal(2, await db.Sessions.IgnoreQueryFilters().CountAsync());
    }

    [Fact]
    public async Task Retention_deletes_idle_sessions_with_all_their_rows_and_reports_the_count()
    {
        var idle = await _sessions.CreateAsync("alice", "old", default);
        var active = await _sessions.CreateAsync("bob", "new", default);
        await AddTurnsAsync(idle.Id, "alice", 4);
        await _db.ExecuteAsync($"UPDATE workers.sessions SET last_active_at = now() - interval '40 days' WHERE id = '{idle.Id}'");
        // As the worker's role, with the TTL the migrator set (30 days by default).
        await using var workerDataSource = NpgsqlDataSource.Create(_db.Worker);
        var retention = new SessionRetentionService(workerDataSource, Options.Create(new RetentionOptions()),
            NullLogger<SessionRetentionService>.Instance);

        Assert.Equal(1, await retention.SweepAsync(default));
        Assert.Equal(0L, await _db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE session_id = '{idle.Id}'"));
        Assert.Equal(1L, await _db.ScalarAsync<long>("SELECT count(*) FROM workers.sessions"));
        Assert.Equal("new", (await _sessions.GetAsync("bob", active.Id, default)).Title);
        Assert.Equal(0, await retention.SweepAsync(default));
    }

    [Fact]
    public async Task A_scope_needs_a_user_and_an_empty_one_is_refused()
    {
        var store = new SessionStore(_dataSource);
        foreach (var user in new[] { "", new string('u', 129) })
        {
            var error = await Assert.ThrowsAsync<ChatErrorException>(() => store.BeginAsync(user, null, default));
            Assert.Equal(ErrorCodes.InvalidRequest, error.Code);
        }
    }
}
