namespace MoeSharp.Server.Engine;

/// <summary>An engine's queue holds as many waiting requests as it may; the server answers 429.</summary>
public sealed class QueueFullException : Exception
{
    /// <summary>A full queue of <paramref name="capacity"/> waiting requests.</summary>
    public QueueFullException(int capacity)
        : base($"the request queue is full ({capacity} waiting); try again later.") => Capacity = capacity;

    /// <summary>A full queue, described by <paramref name="message"/>.</summary>
    public QueueFullException(string message) : base(message) { }

    /// <summary>How many requests may wait; 0 when unknown.</summary>
    public int Capacity { get; }
}
