namespace Workers.Worker.Model;

/// <summary>What one provider's model can take and what it costs: its context window, what a reply may need of it, the
/// tokenizer that counts for it, and its prices. The worker keeps each turn's prompt under <see cref="ModelOptions.SummarizeAtPercent"/> of the window
/// (less the reserve) by folding older turns into the session's stored summary.</summary>
public abstract class ContextLimits
{
    /// <summary>Tokens the model accepts, prompt and reply together.</summary>
    public int ContextWindow { get; set; }

    /// <summary>Tokens kept free for the reply (and the tools' schemas).</summary>
    public int OutputReserve { get; set; }

    /// <summary>The tiktoken encoding that counts for this model: <c>o200k_base</c> (gpt-4o, gpt-4.1, gpt-5, o-series)
    /// or <c>cl100k_base</c> (gpt-4, gpt-3.5). Set, not derived from the model name: deployment names and Ollama or vLLM
    /// model ids say nothing about it. For other model families o200k is an estimate.</summary>
    public string Encoding { get; set; } = "o200k_base";

    /// <summary>US dollars per million prompt tokens (not cached).</summary>
    public decimal InputPrice { get; set; }

    /// <summary>US dollars per million prompt tokens the provider served from its cache.</summary>
    public decimal CachedInputPrice { get; set; }

    /// <summary>US dollars per million completion tokens.</summary>
    public decimal OutputPrice { get; set; }

    /// <summary>A call's cost in micro-dollars: (prompt - cached) at the input price, cached at the cached price, and
    /// completion at the output price. Dollars per million tokens are micro-dollars per token.</summary>
    public long CostMicros(int prompt, int cached, int completion) =>
        (long)Math.Round((Math.Max(0, prompt - cached) * InputPrice) + (cached * CachedInputPrice) + (completion * OutputPrice));
}
