namespace Likeness.Core.Tests;
