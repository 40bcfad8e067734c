using TorchSharp;

namespace Likeness.Engine;

/// <summary>
/// Scalars that live as long as the process. TorchSharp passes a Scalar's native handle to libtorch while nothing
/// keeps the managed object alive, so a Scalar made for one call (a bare number, or the alpha 1 TorchSharp adds to
/// <c>a + b</c>) can be freed by a collection while libtorch reads it (ENGINE-NOTES.md, "TorchSharp gotchas"). The
/// engine uses these, its classes' own static readonly Scalars, or a <c>using</c> declaration for a value known only
/// at run time; the LK0001/LK0002 analyzer refuses anything else. Static Scalars are never finalized.
/// </summary>
internal static class Scalars
{
    public static readonly Scalar Zero = 0.ToScalar();

    /// <summary>Also the alpha of <c>a.add(b, One)</c>, which is TorchSharp's <c>a + b</c>.</summary>
    public static readonly Scalar One = 1.ToScalar();

    public static readonly Scalar Two = 2.ToScalar();
}
