using System.Net;
using System.Net.Sockets;

namespace Workers.Testing;

/// <summary>A small HTTP server on a free loopback port that hands every request to <c>handle</c>, one at a time, and
/// closes the response after it: the tests' stand-ins for an OTLP collector and an identity provider.</summary>
public sealed class LoopbackHttpServer : IDisposable
{
    private readonly HttpListener _listener = new();

    public LoopbackHttpServer(Func<HttpListenerContext, Task> handle)
    {
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            Address = new Uri($"http://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}");
            probe.Stop();
        }

        _listener.Prefixes.Add($"{Address}");
        _listener.Start();
        Serving = Task.Run(() => ServeAsync(handle));
    }

    /// <summary>Base address, <c>http://127.0.0.1:port/</c>.</summary>
    public Uri Address { get; }

    public Task Serving { get; }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
    }

    private async Task ServeAsync(Func<HttpListenerContext, Task> handle)
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            try
            {
                await handle(context);
            }
            finally
            {
                context.Response.Close();
            }
        }
    }
}
