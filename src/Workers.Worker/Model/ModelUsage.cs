namespace Workers.Worker.Model;

/// <summary>Token counts a model reports on its last chunk or message: the offline model's own keys, or the OpenAI
/// connector's usage.</summary>
public static class ModelUsage
{
    /// <returns>Prompt tokens (cached ones included), the cached ones among them, and completion tokens.</returns>
    public static (int Prompt, int Cached, int Completion)? From(IReadOnlyDictionary<string, object?>? metadata) =>
        metadata switch
        {
            { } m when m.TryGetValue("PromptTokens", out var p) && p is int prompt && m.TryGetValue("CompletionTokens", out var c)
                && c is int completion => (prompt, 0, completion),
            // Details are null when a server leaves them out (Ollama, vLLM).
            { } m when m.TryGetValue("Usage", out var u) && u is OpenAI.Chat.ChatTokenUsage usage =>
                (usage.InputTokenCount, usage.InputTokenDetails?.CachedTokenCount ?? 0, usage.OutputTokenCount),
            _ => null,
        };
}
