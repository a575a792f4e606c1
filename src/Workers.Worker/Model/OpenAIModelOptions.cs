namespace Workers.Worker.Model;

/// <summary>An OpenAI-compatible chat-completions endpoint: OpenAI, Azure OpenAI, Ollama, vLLM, OpenRouter...</summary>
public sealed class OpenAIModelOptions : ContextLimits
{
    /// <summary>Defaults for the gpt-4o family; set <c>Llm:OpenAI:ContextWindow</c>, <c>:OutputReserve</c> and
    /// <c>:Encoding</c> for another model.</summary>
    public OpenAIModelOptions()
    {
        ContextWindow = 128_000;
        OutputReserve = 4096;
    }

    /// <summary>For a named model (<c>Llm:Models:NAME</c>): <c>OpenAI</c> (an OpenAI-compatible endpoint, the default) or
    /// <c>Offline</c> (the offline model, with <c>Llm:Offline</c>'s limits; no endpoint, no key).</summary>
    public string Provider { get; set; } = "OpenAI";

    /// <summary>Base URL ending before <c>/chat/completions</c>, e.g. <c>http://127.0.0.1:11434/v1</c>.</summary>
    public string? BaseUrl { get; set; }

    public string? Model { get; set; }

    /// <summary>From configuration or the environment (<c>Llm__OpenAI__ApiKey</c>); never logged.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Retries of a timed-out, 429 or 5xx call, with exponential backoff that honours Retry-After.</summary>
    [System.ComponentModel.DataAnnotations.Range(0, 10)]
    public int Retries { get; set; } = 3;

    /// <summary>Longest wait for one HTTP call (each retry has its own).</summary>
    [System.ComponentModel.DataAnnotations.Range(typeof(TimeSpan), "00:00:01", "00:30:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(100);
}
