namespace Likeness.Engine.Tests;

public class SmokeTests
{
    [Fact]
    public void Libtorch_loads_and_multiplies()
    {
        using var a = TorchSharp.torch.ones(2, 2);
        Assert.Equal(8f, a.matmul(a).sum().item<float>());
    }
}
