"""Build a model family's networks by name (the families: ``catalogue.py``); count parameters and forward FLOPs."""

import math

import keras
from keras import layers

from cycle_medgan_tf import catalogue


def build_models(name, image_size=None, channels=1):
    """The networks of model family ``name`` as a dict of part name -> keras.Model (its record's ``networks``).

    cyclegan / cycle_medgan: generator_a2b, generator_b2a, discriminator_a, discriminator_b;
    bigan: encoder, generator, discriminator (needs an int image_size);
    unit: encoder_a/b, shared_encoder, shared_generator, decoder_a/b, discriminator_a/b.
    """
    return catalogue.family(name).build_networks(image_size, channels)


def parameter_summary(name, image_size, channels=1) -> dict:
    """``{"model": name, "parts": {part: n_params}, "total": n}``; the frozen parts a family uses but does not
    train (Cycle-MedGAN's feature extractor) are listed too."""
    family = catalogue.family(name)
    nets = dict(family.build_networks(image_size, channels))
    if family.frozen_parts:
        nets.update(catalogue.load(family.frozen_parts)(image_size))
    parts = {part: count_params(net) for part, net in nets.items()}
    return {"model": name, "parts": parts, "total": sum(parts.values())}


def count_params(model):
    """Total number of parameters (trainable and not) of a built model."""
    return int(sum(math.prod(w.shape) for w in model.weights))


def _layer_calls(model):
    """(layer, input KerasTensor, output KerasTensor) of every call recorded in a functional graph.

    Uses the graph Keras stores on a functional model (``_nodes_by_depth``), so shared layers
    and nested models are seen once per call.
    """
    calls = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation is None or not node.input_tensors:
                continue
            calls.append((node.operation, node.input_tensors, node.output_tensors))
    return calls


def _multiply_adds(layer, input_shape, output_shape):
    spatial_out = math.prod(output_shape[1:-1])
    kernel_shape = tuple(layer.kernel.shape)
    if isinstance(layer, layers.Conv2DTranspose):
        # Each input pixel scatters an (kh, kw, out_c) patch per input channel.
        kh, kw, out_c, in_c = kernel_shape
        return math.prod(input_shape[1:-1]) * kh * kw * in_c * out_c
    if isinstance(layer, layers.Conv2D):
        kh, kw, in_c, out_c = kernel_shape
        return spatial_out * kh * kw * in_c * out_c
    in_units, out_units = kernel_shape
    return math.prod(output_shape[1:-1]) * in_units * out_units


def _flops(model, inputs):
    calls = [c for c in _layer_calls(model)
             if isinstance(c[0], (layers.Conv2D, layers.Conv2DTranspose, layers.Dense, keras.Model))]
    probe = keras.Model(model.inputs, [[c[1], c[2]] for c in calls])
    resolved = probe(inputs)
    total = 0
    for (layer, _, _), (layer_inputs, layer_outputs) in zip(calls, resolved):
        if isinstance(layer, keras.Model):
            total += _flops(layer, layer_inputs if len(layer_inputs) > 1 else layer_inputs[0])
        else:
            shape_in, shape_out = layer_inputs[0].shape, layer_outputs[0].shape
            total += 2 * _multiply_adds(layer, shape_in, shape_out)
    return total


def forward_flops(model, input_shape):
    """FLOPs (2 x multiply-adds) of all Conv2D, Conv2DTranspose and Dense layers, one sample.

    ``input_shape`` is the per-sample shape, e.g. (256, 256, 1), or a list of such shapes for
    a multi-input model. Shapes of every layer are inferred symbolically at that size; nested
    models are counted through their own layers. Biases and activations are not counted.
    """
    shapes = input_shape if isinstance(input_shape[0], (tuple, list)) else [input_shape]
    if len(shapes) != len(model.inputs):
        raise ValueError(f"{model.name} takes {len(model.inputs)} inputs, got {len(shapes)} shapes")
    for declared, requested in zip(model.inputs, shapes):
        fixed = tuple(declared.shape[1:])
        if len(fixed) != len(requested) or any(
                d is not None and d != int(r) for d, r in zip(fixed, requested)):
            raise ValueError(f"{model.name} was built for inputs {fixed}, not {tuple(requested)}")
    inputs = [keras.Input(batch_shape=(1, *map(int, s))) for s in shapes]
    return int(_flops(model, inputs if len(inputs) > 1 else inputs[0]))
