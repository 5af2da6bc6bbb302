"""Reference models, each a ``factory(**options)`` -> ``nn.Module``, defined in the project.

``edgefleet export --model edgefleet.compress.zoo:digits_cnn`` works with any of them. Small models
used by the demo, tests and benchmarks live in ``_small``; the families people deploy (MobileNetV2,
MobileNetV3-Small, EfficientNet-B0, ResNet-18, ViT) each take a ``width`` multiplier so a test can
build them small, and ``all_minilm_l6_v2`` loads the real pretrained sentence encoder when its
package is installed.
"""

from ._small import INPUT_SHAPES, bert_encoder, digits_cnn, fashion_mlp, mlp, mobilenet_v2_stack
from .cnn import efficientnet_b0, mobilenet_v2, mobilenet_v3_small, resnet18
from .minilm import all_minilm_l6_v2
from .vit import vit_tiny

__all__ = ["digits_cnn", "mlp", "fashion_mlp", "mobilenet_v2_stack", "bert_encoder", "INPUT_SHAPES", "mobilenet_v2",
           "mobilenet_v3_small", "efficientnet_b0", "resnet18", "vit_tiny", "all_minilm_l6_v2", "FAMILIES"]

#: the deployable families: factory name -> input shape (without the batch axis) at full size
FAMILIES = {"mobilenet_v2": (3, 224, 224), "mobilenet_v3_small": (3, 224, 224), "efficientnet_b0": (3, 224, 224),
            "resnet18": (3, 224, 224), "vit_tiny": (3, 224, 224)}
