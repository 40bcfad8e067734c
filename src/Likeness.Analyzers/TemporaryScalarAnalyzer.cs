using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Likeness.Analyzers;

/// <summary>
/// TorchSharp passes a <c>Scalar</c>'s native handle to libtorch while nothing keeps the managed object alive: a
/// collection during the call can run its finalizer and free it ("Unknown scalar type", or a silently different
/// number). A Scalar must therefore live longer than the call: a static readonly field, or a <c>using</c> declaration.
/// LK0001: a number converted to a Scalar on the spot (<c>x.pow(2)</c>, <c>(Scalar)0.5</c>, <c>full(shape, 3.5f)</c>),
/// or a <c>ToScalar()</c> that nothing holds. LK0002: a TorchSharp member that makes such a Scalar inside
/// (<c>x * 0.5</c>, <c>a + b</c> of tensors, <c>square()</c>, TorchSharp's optimizers; see TorchSharpScalarMakers.txt).
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class TemporaryScalarAnalyzer : DiagnosticAnalyzer
{
    public static readonly DiagnosticDescriptor Conversion = new(
        "LK0001",
        "Temporary TorchSharp Scalar",
        "{0} becomes a TorchSharp Scalar that nothing holds during the native call; a collection can free it while libtorch reads it. Keep it in a static readonly field or a using declaration.",
        "Reliability", DiagnosticSeverity.Error, isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor Maker = new(
        "LK0002",
        "TorchSharp makes a temporary Scalar",
        "{0} makes a temporary Scalar inside TorchSharp, which a collection can free while libtorch reads it; use the overload that takes a Scalar and pass a held one (a + b: a.add(b, one))",
        "Reliability", DiagnosticSeverity.Error, isEnabledByDefault: true);

    private static readonly ImmutableHashSet<string> Makers = ReadMakers();

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => [Conversion, Maker];

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            if (scalar is null) return;
            start.RegisterOperationAction(c => OnConversion(c, scalar), OperationKind.Conversion);
            start.RegisterOperationAction(c => OnCall(c, scalar), OperationKind.Invocation, OperationKind.BinaryOperator,
                OperationKind.UnaryOperator, OperationKind.CompoundAssignment, OperationKind.ObjectCreation);
        });
    }

    private static void OnConversion(OperationAnalysisContext c, INamedTypeSymbol scalar)
    {
        var conversion = (IConversionOperation)c.Operation;
        if (conversion.Conversion.IsUserDefined && SymbolEqualityComparer.Default.Equals(conversion.Type, scalar))
            c.ReportDiagnostic(Diagnostic.Create(Conversion, conversion.Syntax.GetLocation(), $"'{conversion.Operand.Syntax}'"));
    }

    private static void OnCall(OperationAnalysisContext c, INamedTypeSymbol scalar)
    {
        var (method, receiver) = c.Operation switch
        {
            IInvocationOperation i => (i.TargetMethod, i.Instance?.Type),
            IBinaryOperation b => (b.OperatorMethod, null),
            IUnaryOperation u => (u.OperatorMethod, null),
            ICompoundAssignmentOperation a => (a.OperatorMethod, null),
            IObjectCreationOperation o => (o.Constructor, null),
            _ => (null, null),
        };
        if (method is null) return;

        if (SymbolEqualityComparer.Default.Equals(method.ReturnType, scalar) && method.ContainingType.Name == "ScalarExtensionMethods" && !Held(c.Operation))
        {
            c.ReportDiagnostic(Diagnostic.Create(Conversion, c.Operation.Syntax.GetLocation(), $"'{c.Operation.Syntax}'"));
            return;
        }
        if (Candidates(method, receiver).Any(IsMaker))
            c.ReportDiagnostic(Diagnostic.Create(Maker, c.Operation.Syntax.GetLocation(), $"'{c.Operation.Syntax}'"));
        else if (VirtualMaker(c.Operation.Type) is { } inside)
            c.ReportDiagnostic(Diagnostic.Create(Maker, c.Operation.Syntax.GetLocation(), $"'{c.Operation.Syntax}' (through {inside.ContainingType.Name}.{inside.Name})"));
    }

    private static bool IsMaker(IMethodSymbol method) => method.GetDocumentationCommentId() is { } id && Makers.Contains(id);

    /// <summary>
    /// An object whose overrides make temporary Scalars (TorchSharp's optimizers' <c>step</c>, some modules'
    /// <c>forward</c>) is refused where it is made: the calls may go through a base type that the list cannot name.
    /// </summary>
    private static IMethodSymbol? VirtualMaker(ITypeSymbol? type)
    {
        for (var t = type as INamedTypeSymbol; t is not null && t.ContainingNamespace?.ToDisplayString().StartsWith("TorchSharp") == true; t = t.BaseType)
            foreach (var m in t.GetMembers().OfType<IMethodSymbol>())
                if (m.IsOverride && IsMaker(m.OriginalDefinition)) return m;
        return null;
    }

    /// <summary>The method, what it overrides, and its override in the receiver's type (<c>optimizer.step()</c> on an AdamW).</summary>
    private static IEnumerable<IMethodSymbol> Candidates(IMethodSymbol method, ITypeSymbol? receiver)
    {
        for (var m = method.OriginalDefinition; m is not null; m = m.OverriddenMethod?.OriginalDefinition) yield return m;
        if (!method.IsVirtual && !method.IsAbstract && !method.IsOverride) yield break;
        for (var t = receiver as INamedTypeSymbol; t is not null; t = t.BaseType)
            foreach (var m in t.GetMembers(method.Name).OfType<IMethodSymbol>())
                if (m.IsOverride) yield return m.OriginalDefinition;
    }

    /// <summary>A <c>ToScalar()</c> that initialises a field or a <c>using</c> local lives as long as it must.</summary>
    private static bool Held(IOperation operation)
    {
        var parent = operation.Parent;
        while (parent is IConversionOperation { IsImplicit: true }) parent = parent.Parent;
        return parent switch
        {
            IFieldInitializerOperation => true,
            IVariableInitializerOperation { Parent: IVariableDeclaratorOperation { Parent: IVariableDeclarationOperation { Parent: IVariableDeclarationGroupOperation { Parent: IUsingDeclarationOperation } } } } => true,
            IVariableInitializerOperation { Parent: IVariableDeclaratorOperation { Parent: IVariableDeclarationOperation { Parent: IVariableDeclarationGroupOperation { Parent: IUsingOperation } } } } => true,
            IVariableInitializerOperation { Parent: IVariableDeclaratorOperation { Parent: IVariableDeclarationOperation { Parent: IUsingOperation } } } => true,
            _ => false,
        };
    }

    private static ImmutableHashSet<string> ReadMakers()
    {
        using var stream = typeof(TemporaryScalarAnalyzer).Assembly.GetManifestResourceStream("TorchSharpScalarMakers.txt")!;
        using var reader = new StreamReader(stream);
        var ids = new List<string>();
        for (var line = reader.ReadLine(); line is not null; line = reader.ReadLine())
            if (line.Length > 0 && line[0] != '#') ids.Add(line.Trim());
        return [.. ids];
    }
}
