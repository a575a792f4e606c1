using Microsoft.SemanticKernel.ChatCompletion;

namespace Workers.Worker.Turns;

/// <summary>What the model is handed: the system prompt, the session's newest turns that fit the budget, the message.</summary>
public static class TurnHistory
{
    /// <param name="systemPrompt">From configuration.</param>
    /// <param name="turns">The session's turns, oldest first.</param>
    /// <param name="message">The user's new message.</param>
    /// <param name="budgetChars">Characters of earlier turns (message and reply) to keep; the oldest are dropped first.</param>
    public static ChatHistory Build(string systemPrompt, IReadOnlyList<(string User, string Reply)> turns, string message, int budgetChars)
    {
        ArgumentNullException.ThrowIfNull(turns);
        var history = new ChatHistory(systemPrompt);
        var kept = 0;
        for (var i = turns.Count - 1; i >= 0; i--)
        {
            var size = turns[i].User.Length + turns[i].Reply.Length;
            if (size > budgetChars)
            {
                break;
            }

            budgetChars -= size;
            kept++;
        }

        foreach (var (user, reply) in turns.Skip(turns.Count - kept))
        {
            history.AddUserMessage(user);
            history.AddAssistantMessage(reply);
        }

        history.AddUserMessage(message);
        return history;
    }
}
