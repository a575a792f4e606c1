namespace Workers.Core.Hosting;

/// <summary>
/// <c>Workers.Worker.dll probe URL</c> (or the notifier's): the container health check. The runtime image has no shell
/// or curl, so the host's own binary asks its <c>/health/ready</c> and exits 0 on a 2xx within 5 s, 1 otherwise.
/// </summary>
public static class HealthProbe
{
    public static async Task<int?> RunIfAskedAsync(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args is not ["probe", var url])
        {
            return null;
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync(new Uri(url));
            Console.WriteLine($"{url}: {(int)response.StatusCode}");
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or UriFormatException)
        {
            Console.Error.WriteLine($"{url}: {e.GetType().Name}");
            return 1;
        }
    }
}
