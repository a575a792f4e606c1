using System.Net;
using System.Net.Sockets;

namespace Workers.Benchmarks.Infrastructure;

/// <summary>
/// A loopback TCP relay in front of PostgreSQL that counts what clients send, whatever the client process: messages by
/// type (extended protocol: Parse, Bind, Execute, Sync; simple protocol: Query) and round trips, i.e. how often a
/// client sends again after the server answered. Used only in counting phases: it adds a hop to every statement.
/// Needs a plain connection (the scenarios set <c>SSL Mode=Disable</c> for it).
/// </summary>
internal sealed class PgWireCounter : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _relays = [];
    private readonly Task _accepting;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _verbs = new();
    private long _roundTrips, _sync, _query, _parse, _bind, _execute, _connections, _bytesToServer, _bytesToClient;

    public PgWireCounter(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Statements by first word (Parse and Query messages), e.g. "P SELECT", "Q COMMIT".</summary>
    public IReadOnlyDictionary<string, long> Verbs() => new Dictionary<string, long>(_verbs);

    public Counts Read() => new(Interlocked.Read(ref _roundTrips), Interlocked.Read(ref _sync), Interlocked.Read(ref _query),
        Interlocked.Read(ref _parse), Interlocked.Read(ref _bind), Interlocked.Read(ref _execute), Interlocked.Read(ref _connections),
        Interlocked.Read(ref _bytesToServer), Interlocked.Read(ref _bytesToClient));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // stopping
        }

        Task[] relays;
        lock (_relays)
        {
            relays = [.. _relays];
        }

        await Task.WhenAll(relays.Select(r => r.ContinueWith(_ => { }, TaskScheduler.Default)));
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            Interlocked.Increment(ref _connections);
            var relay = RelayAsync(client);
            lock (_relays)
            {
                _relays.RemoveAll(r => r.IsCompleted);
                _relays.Add(relay);
            }
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using (client)
        using (var server = new TcpClient { NoDelay = true })
        {
            client.NoDelay = true;
            await server.ConnectAsync(_targetHost, _targetPort, _stop.Token);
            var state = new Connection();
            await using var clientStream = client.GetStream();
            await using var serverStream = server.GetStream();
            using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            var up = PumpAsync(clientStream, serverStream, state, toServer: true, done.Token);
            var down = PumpAsync(serverStream, clientStream, state, toServer: false, done.Token);
            await Task.WhenAny(up, down);
            await done.CancelAsync();
            try
            {
                await Task.WhenAll(up, down);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
            {
                // one side closed
            }
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, Connection state, bool toServer, CancellationToken cancel)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReadAsync(buffer, cancel);
                if (read == 0)
                {
                    return;
                }

                if (toServer)
                {
                    Interlocked.Add(ref _bytesToServer, read);
                    lock (state)
                    {
                        if (state.ServerAnswered)
                        {
                            state.ServerAnswered = false;
                            Interlocked.Increment(ref _roundTrips);
                        }

                        Parse(state, buffer.AsSpan(0, read));
                    }
                }
                else
                {
                    Interlocked.Add(ref _bytesToClient, read);
                    lock (state)
                    {
                        state.ServerAnswered = true;
                    }
                }

                await to.WriteAsync(buffer.AsMemory(0, read), cancel);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // closed
        }
    }

    /// <summary>Frames the client's stream: untyped start-up packets (length, code) first, then typed messages.</summary>
    private void Parse(Connection state, ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            if (state.Remaining > 0)
            {
                state.Remaining--;
                if (state.Capture is { } capture)
                {
                    if (capture.Count < 64)
                    {
                        capture.Add(b);
                    }

                    if (state.Remaining == 0 || capture.Count == 64)
                    {
                        Classify(state.CaptureType, capture);
                        state.Capture = null;
                    }
                }

                continue;
            }

            if (!state.Typed)
            {
                // Start-up phase: a 4-byte length including itself, then a 4-byte code; SSL/GSS requests and the
                // start-up message itself have no type byte.
                state.Header[state.HeaderFill++] = b;
                if (state.HeaderFill < 8)
                {
                    continue;
                }

                var length = (state.Header[0] << 24) | (state.Header[1] << 16) | (state.Header[2] << 8) | state.Header[3];
                var code = (state.Header[4] << 24) | (state.Header[5] << 16) | (state.Header[6] << 8) | state.Header[7];
                state.HeaderFill = 0;
                state.Remaining = length - 8;
                // 80877103 SSLRequest, 80877104 GSSENCRequest, 80877102 CancelRequest: another untyped packet may follow.
                if (code is not (80877103 or 80877104 or 80877102))
                {
                    state.Typed = true;
                }

                continue;
            }

            state.Header[state.HeaderFill++] = b;
            if (state.HeaderFill < 5)
            {
                continue;
            }

            var typedLength = (state.Header[1] << 24) | (state.Header[2] << 16) | (state.Header[3] << 8) | state.Header[4];
            state.HeaderFill = 0;
            state.Remaining = typedLength - 4;
            if (state.Header[0] is (byte)'P' or (byte)'Q' && state.Remaining > 0)
            {
                state.Capture = [];
                state.CaptureType = (char)state.Header[0];
            }

            switch ((char)state.Header[0])
            {
                case 'S': Interlocked.Increment(ref _sync); break;
                case 'Q': Interlocked.Increment(ref _query); break;
                case 'P': Interlocked.Increment(ref _parse); break;
                case 'B': Interlocked.Increment(ref _bind); break;
                case 'E': Interlocked.Increment(ref _execute); break;
            }
        }
    }

    private void Classify(char type, List<byte> payload)
    {
        var bytes = payload.ToArray().AsSpan();
        if (type == 'P')
        {
            // Parse: statement name (C string), then the query text.
            var end = bytes.IndexOf((byte)0);
            bytes = end < 0 ? [] : bytes[(end + 1)..];
        }

        var text = System.Text.Encoding.ASCII.GetString(bytes).TrimStart();
        var word = new string(text.TakeWhile(c => char.IsLetter(c) || c == '_').ToArray()).ToUpperInvariant();
        _verbs.AddOrUpdate($"{type} {(word.Length == 0 ? "?" : word)}", 1, (_, n) => n + 1);
    }

    public static IReadOnlyDictionary<string, long> Delta(IReadOnlyDictionary<string, long> after, IReadOnlyDictionary<string, long> before) =>
        after.Select(p => (p.Key, Value: p.Value - before.GetValueOrDefault(p.Key))).Where(p => p.Value != 0)
            .OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => p.Value);

    private sealed class Connection
    {
        public List<byte>? Capture;
        public char CaptureType;
        public bool Typed;
        public bool ServerAnswered = true;
        public int HeaderFill;
        public long Remaining;
        public readonly byte[] Header = new byte[8];
    }

    public sealed record Counts(long RoundTrips, long Sync, long Query, long Parse, long Bind, long Execute, long Connections,
        long BytesToServer, long BytesToClient)
    {
        public static Counts operator -(Counts a, Counts b) => new(a.RoundTrips - b.RoundTrips, a.Sync - b.Sync, a.Query - b.Query,
            a.Parse - b.Parse, a.Bind - b.Bind, a.Execute - b.Execute, a.Connections - b.Connections,
            a.BytesToServer - b.BytesToServer, a.BytesToClient - b.BytesToClient);
    }
}
