namespace Workers.Worker.Ordering;

/// <summary>Whether a request may join its session's lane: the lane's head is the running request, the rest wait, and
/// at most <c>MaxWaitingPerSession</c> may wait. Beyond that the request is refused <c>session_busy</c>.</summary>
public static class LaneAdmission
{
    /// <param name="inLane">Requests in the session's lane now, the running one included (0: no lane).</param>
    /// <param name="maxWaiting">The limit on waiting requests.</param>
    public static bool Admits(int inLane, int maxWaiting) => inLane == 0 || inLane - 1 < maxWaiting;
}
