namespace Workers.Worker.Model;

/// <summary>An OpenAI-compatible chat-completions endpoint: OpenAI, Azure OpenAI, Ollama, vLLM, OpenRouter...</summary>
public sealed class OpenAIModelOptions
{
    /// <summary>Base URL ending before <c>/chat/completions</c>, e.g. <c>http://127.0.0.1:11434/v1</c>.</summary>
    public string? BaseUrl { get; set; }

    public string? Model { get; set; }

    /// <summary>From configuration or the environment (<c>Llm__OpenAI__ApiKey</c>); never logged.</summary>
    public string? ApiKey { get; set; }
}
