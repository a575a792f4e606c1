using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.ExceptionServices;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Workers.Contracts;

namespace Workers.Notifier.Chat;

/// <summary>
/// The hub's JSON protocol, except that a call whose arguments do not bind (too few, too many, of the wrong type, or a
/// method that does not exist) is refused like every other bad input: <c>HubException("invalid_request: ...")</c>. SignalR
/// answers such a call before any hub filter runs, and without this only with "Failed to invoke 'X' due to an error on the
/// server.", no code. A frame that is not JSON at all still closes the connection.
/// </summary>
public sealed class MalformedCalls(IHubProtocol json) : IHubProtocol
{
    public string Name => json.Name;

    public int Version => json.Version;

    public TransferFormat TransferFormat => json.TransferFormat;

    public bool TryParseMessage(ref ReadOnlySequence<byte> input, IInvocationBinder binder, [NotNullWhen(true)] out HubMessage? message)
    {
        if (!json.TryParseMessage(ref input, binder, out message))
        {
            return false;
        }

        if (message is InvocationBindingFailureMessage failure)
        {
            // The framework's own words (how many arguments, or that their types do not match), never the values sent.
            var reason = failure.BindingFailure.SourceException.Message;
            message = new InvocationBindingFailureMessage(failure.InvocationId, failure.Target,
                ExceptionDispatchInfo.Capture(new HubException($"{ErrorCodes.InvalidRequest}: {reason}")));
        }

        return true;
    }

    public void WriteMessage(HubMessage message, IBufferWriter<byte> output) => json.WriteMessage(message, output);

    public ReadOnlyMemory<byte> GetMessageBytes(HubMessage message) => json.GetMessageBytes(message);

    public bool IsVersionSupported(int version) => json.IsVersionSupported(version);
}
