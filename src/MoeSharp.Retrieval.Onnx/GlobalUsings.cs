// An alias rather than a namespace import: System.Numerics.Tensors also defines a type named Tensor.
global using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
