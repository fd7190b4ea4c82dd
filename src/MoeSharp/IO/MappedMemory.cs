using System.Buffers;

namespace MoeSharp.IO;

/// <summary>A memory-mapped file whose views must not be used after it is disposed.</summary>
internal interface IMappedFile
{
    /// <summary>Whether the mapping has been released.</summary>
    bool IsDisposed { get; }
}

/// <summary>
/// Memory over a range of a file's mapping (a tensor used in place): it keeps the file object alive, pinning is free,
/// and any use after the file is disposed throws instead of reading unmapped memory.
/// </summary>
internal sealed unsafe class MappedMemory(IMappedFile owner, byte* pointer, int length) : MemoryManager<byte>
{
    public override Span<byte> GetSpan()
    {
        ObjectDisposedException.ThrowIf(owner.IsDisposed, owner);
        return new Span<byte>(pointer, length);
    }

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(owner.IsDisposed, owner);
        return new MemoryHandle(pointer + elementIndex);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
