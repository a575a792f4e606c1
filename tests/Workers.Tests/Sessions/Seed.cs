using Workers.Tests.Infrastructure;

namespace Workers.Tests.Sessions;

/// <summary>Two users with a session each, every user table filled, written as the superuser (which bypasses RLS).</summary>
public sealed record Seed(Guid SessionA, Guid SessionB)
{
    public const string UserA = "alice";
    public const string UserB = "bob";

    public static async Task<Seed> TwoUsersAsync(TestDatabase db)
    {
        var seed = new Seed(Guid.NewGuid(), Guid.NewGuid());
        foreach (var (user, session) in new[] { (UserA, seed.SessionA), (UserB, seed.SessionB) })
        {
            await db.ExecuteAsync($"""
                INSERT INTO workers.sessions (id, owner_id, title, turn_seq) VALUES ('{session}', '{user}', '{user} chat', 2);
                INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status, first_seq, last_seq, started_at)
                VALUES ('{session}', 1, '{user}', gen_random_uuid(), '{user} secret 1', 'reply 1', 'complete', 1, 3, now()),
                       ('{session}', 2, '{user}', gen_random_uuid(), '{user} secret 2', 'reply 2', 'complete', 4, 6, now());
                INSERT INTO workers.inbox (session_id, request_id, owner_id, status) VALUES ('{session}', gen_random_uuid(), '{user}', 'complete');
                INSERT INTO workers.session_notes (session_id, key, owner_id, value) VALUES ('{session}', 'pin', '{user}', '{user} pin');
                INSERT INTO workers.parked_requests (session_id, request_id, owner_id, user_text, code, reason, attempts)
                VALUES ('{session}', gen_random_uuid(), '{user}', '{user} parked secret', 'poisoned', 'parked', 5);
                INSERT INTO workers.session_memory (session_id, owner_id, through_turn, summary, tokens)
                VALUES ('{session}', '{user}', 1, '{user} summarised secret', 9);
                INSERT INTO workers.user_usage (owner_id, day, turns, prompt_tokens) VALUES ('{user}', current_date, 2, 42);
                INSERT INTO workers.usage_reservations (owner_id, session_id, request_id, tokens, cost_micros) VALUES ('{user}', '{session}', gen_random_uuid(), 100, 0);
                """);
        }

        return seed;
    }

    public Guid SessionOf(string user) => user == UserA ? SessionA : SessionB;
}
