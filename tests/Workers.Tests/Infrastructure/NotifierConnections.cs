namespace Workers.Tests.Infrastructure;

/// <summary>A browser's connection to a notifier of the system under test (the benchmarks bring their own client).</summary>
public static class NotifierConnections
{
    public static Task<ChatClient> ConnectAsync(this NotifierProcess notifier, string userId, string? token = null) =>
        ChatClient.ConnectAsync(notifier, userId, token ?? NotifierProcess.Token(userId));
}
