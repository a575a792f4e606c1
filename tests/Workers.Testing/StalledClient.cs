using System.Diagnostics;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;

namespace Workers.Testing;

/// <summary>
/// A browser that subscribes to a session and then stops reading its socket, as a frozen tab or a hostile client does.
/// It speaks the SignalR JSON protocol over a raw websocket whose receive buffer is tiny, so the notifier's writes to it
/// back up within a few kilobytes. <see cref="DrainAsync"/> reads again and says whether the notifier had closed it.
/// </summary>
public sealed class StalledClient : IAsyncDisposable
{
    private const char RecordSeparator = '\u001e';
    private readonly ClientWebSocket _socket;
    private readonly HttpMessageInvoker _invoker;
    private readonly CancellationTokenSource _stop = new();
    private Task _pings = Task.CompletedTask;

    private StalledClient(ClientWebSocket socket, HttpMessageInvoker invoker)
    {
        _socket = socket;
        _invoker = invoker;
    }

    /// <summary>The beginning of what <see cref="DrainAsync"/> read, for a report.</summary>
    public string FirstReceived { get; private set; } = "";

    /// <summary>Connects, subscribes to <paramref name="sessionId"/> after <paramref name="afterSeq"/>, and reads no more.</summary>
    public static async Task<StalledClient> SubscribeAndStallAsync(Uri notifier, string token, Guid sessionId, long afterSeq = 0)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 4096 };
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        var invoker = new HttpMessageInvoker(handler);
        var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Authorization", $"Bearer {token}");
        var uri = new UriBuilder(notifier) { Scheme = notifier.Scheme == "https" ? "wss" : "ws", Path = "/hubs/chat" }.Uri;
        await ws.ConnectAsync(uri, invoker, CancellationToken.None);
        var client = new StalledClient(ws, invoker);
        await client.SendAsync("{\"protocol\":\"json\",\"version\":1}");
        var handshake = await client.ReceiveRecordAsync();
        if (handshake != "{}")
        {
            throw new InvalidOperationException($"SignalR handshake refused: {handshake}");
        }

        await client.SendAsync($"{{\"type\":1,\"invocationId\":\"1\",\"target\":\"Subscribe\",\"arguments\":[\"{sessionId}\",{afterSeq}]}}");
        // It keeps pinging, as a live client does, so the server's client timeout (30 s without a message) never
        // closes it: only falling behind can.
        client._pings = client.PingAsync();
        return client;
    }

    /// <summary>
    /// Reads until the connection ends or <paramref name="timeout"/> passes. Closed is true when the notifier closed or
    /// aborted the connection. Reset is true when it ended without a close frame: then what the notifier had written
    /// may be lost on the way (a socket closed while a ping of ours sat unread on the server's side sends a TCP reset,
    /// and the kernel drops what this side had not read yet), so Bytes counts only what arrived before.
    /// </summary>
    public async Task<(bool Closed, bool Reset, long Bytes, TimeSpan Elapsed)> DrainAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var buffer = new byte[64 * 1024];
        long bytes = 0;
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var result = await _socket.ReceiveAsync(buffer, deadline.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return (true, false, bytes, clock.Elapsed);
                }

                if (bytes == 0)
                {
                    FirstReceived = Encoding.UTF8.GetString(buffer, 0, Math.Min(result.Count, 300));
                }

                bytes += result.Count;
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            return (false, false, bytes, clock.Elapsed);
        }
        catch (WebSocketException)
        {
            // The server went away without a close frame: an abort.
            return (true, true, bytes, clock.Elapsed);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _pings;
        _stop.Dispose();
        _socket.Abort();
        _socket.Dispose();
        _invoker.Dispose();
        await Task.CompletedTask;
    }

    private async Task PingAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested && _socket.State == WebSocketState.Open)
            {
                await Task.Delay(TimeSpan.FromSeconds(5), _stop.Token);
                await SendAsync("{\"type\":6}");
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // stopped, or the server closed the connection
        }
    }

    private Task SendAsync(string record) =>
        _socket.SendAsync(Encoding.UTF8.GetBytes(record + RecordSeparator), WebSocketMessageType.Text, true, CancellationToken.None);

    private async Task<string> ReceiveRecordAsync()
    {
        var buffer = new byte[4096];
        var text = new StringBuilder();
        while (!text.ToString().Contains(RecordSeparator, StringComparison.Ordinal))
        {
            var result = await _socket.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new InvalidOperationException("the notifier closed the connection during the handshake");
            }

            text.Append(Encoding.UTF8.GetString(buffer, 0, result.Count));
        }

        return text.ToString().Split(RecordSeparator)[0];
    }
}
