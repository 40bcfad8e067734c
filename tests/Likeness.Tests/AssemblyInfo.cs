namespace Likeness.Tests;
