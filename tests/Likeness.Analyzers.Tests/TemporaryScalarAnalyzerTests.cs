using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Likeness.Analyzers.Tests;

public sealed class TemporaryScalarAnalyzerTests
{
    [Theory]
    [InlineData("x.pow(2)", "LK0001")]
    [InlineData("x.clamp(-1, 1)", "LK0001")]
    [InlineData("full(new long[] { 1 }, 3.5f)", "LK0001")]
    [InlineData("x.mul((Scalar)0.5)", "LK0001")]
    [InlineData("x.pow(2.ToScalar())", "LK0001")]
    [InlineData("x * 0.5", "LK0002")]
    [InlineData("1 - x", "LK0002")]
    [InlineData("x + x", "LK0002")]
    [InlineData("x.add_(x)", "LK0002")]
    [InlineData("x.square()", "LK0002")]
    public void Refuses_a_Scalar_that_nothing_holds(string expression, string id)
    {
        var diagnostics = Analyze($"Tensor F(Tensor x) => {expression};");
        Assert.Contains(diagnostics, d => d.Id == id);
    }

    [Fact]
    public void Refuses_TorchSharps_optimizers_where_they_are_made()
    {
        var diagnostics = Analyze("object F(Parameter p) => optim.AdamW(new[] { p });");
        Assert.Equal("LK0002", Assert.Single(diagnostics).Id);
    }

    [Fact]
    public void Accepts_held_Scalars_and_ops_that_make_none()
    {
        var diagnostics = Analyze("""
            static readonly Scalar Two = 2.ToScalar();
            static readonly Scalar One = 1.ToScalar();
            Tensor F(Tensor x, double v)
            {
                using var s = v.ToScalar();
                using (var t = 3.ToScalar()) x = x.mul(t);
                return (x.pow(Two) * x - x).add(x.mul(s), One);
            }
            """);
        Assert.Empty(diagnostics);
    }

    private static ImmutableArray<Diagnostic> Analyze(string members)
    {
        var source = $$"""
            using TorchSharp;
            using TorchSharp.Modules;
            using static TorchSharp.torch;
            sealed class C
            {
                {{members}}
            }
            """;
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Append(typeof(TorchSharp.Scalar).Assembly.Location)
            .Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("Snippet", [CSharpSyntaxTree.ParseText(source)], references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        return compilation.WithAnalyzers([new TemporaryScalarAnalyzer()]).GetAnalyzerDiagnosticsAsync().Result;
    }
}
