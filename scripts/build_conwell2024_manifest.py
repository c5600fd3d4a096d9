"""Build ``manifests/conwell2024.csv`` and ``manifests/openclip.csv``.

The Conwell et al. (2024) manifest is derived from the paper's published source data
(``results_summary.csv``: the 224 models, trained and random; ``model_contrasts.csv``:
source, weights URL and task cluster; ``model_statistics/parameter_count.csv``) and from
the mapping tables below, which translate each paper model to *today's* identifier in
torchvision / timm / open_clip / transformers, or to a ``checkpoint`` row (URL + the
timm/torchvision architecture it loads into). Models whose weights need a library we do
not depend on stay in the manifest with ``available=false`` and the reason: no row is
ever dropped.

Every row's architecture is instantiated on the ``meta`` device (no memory, no weights)
to count its parameters; the count is written to ``library_param_count`` and compared
with the paper's count (``param_count``). A difference above 1 % is explained in
``notes`` (the paper's counter skipped parameters registered directly on the root
module, e.g. ViT ``pos_embed``/``cls_token``; headless checkpoints; ...).

Usage::

    python scripts/build_conwell2024_manifest.py                 # both manifests
    python scripts/build_conwell2024_manifest.py --only conwell2024
    python scripts/build_conwell2024_manifest.py --reference PATH --out-dir manifests

Normalisation rules (documented here because the manifests depend on them)
--------------------------------------------------------------------------
task (from the paper's ``train_task``):
    classification -> classification; random -> random; clip -> language-aligned;
    slip -> language-aligned (CLIP, SLIP) or self-supervised-contrastive (SimCLR);
    selfsupervised -> self-supervised-contrastive / self-supervised-noncontrastive
    following the paper's ``compare_goal_contrastive`` (DINO, not labelled there, is
    self-distillation without negatives: noncontrastive); ipcl ->
    self-supervised-contrastive; seer -> self-supervised-contrastive (SwAV, which the
    paper labels contrastive), ``-INFT`` (ImageNet fine-tuned) -> classification;
    taskonomy -> ``taskonomy-<task>`` (``random_weights`` -> random); detection, yolo ->
    detection; segmentation -> segmentation (the paper files keypoint R-CNN here too);
    monoculardepth -> depth; bit_expert -> classification (experts are fine-tuned
    classifiers on ImageNet-21k subtrees).
train_data (from the paper's ``train_data``): imagenet -> imagenet1k; imagenet21k;
    openai400M -> wit400m; YFCC15M -> yfcc15m (``*-CC12M`` SLIP models -> cc12m: the
    paper's label is wrong there); big_transfer -> imagenet21k; random1B -> ig1b
    (``-INFT``: ig1b+imagenet1k); coco2017; "coco,voc" (YOLOv5, trained on COCO) ->
    coco2017; the MiDaS mixture -> midas-mix10; taskonomy; openimages, places256,
    vggface2 unchanged; random models -> empty.
task_cluster: the paper's value ("Self-Supervised" spelled "SelfSupervised"); random models
    -> Random (the typology gives them their trained twin's cluster); IPCL (empty in the
    paper) -> SelfSupervised.
train_data_size: nominal image counts of the datasets (empty when unknown).
"""

from __future__ import annotations

import argparse
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from zooscope.zoo.manifest import FAMILY_SOURCES

logger = logging.getLogger("build_conwell2024_manifest")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "conwell2024"

REQUIRED_COLUMNS = [
    "model_uid",
    "source",
    "name",
    "weights",
    "display_name",
    "arch_class",
    "task",
    "task_cluster",
    "train_data",
]
OPTIONAL_COLUMNS = [
    "train_data_size",
    "seed",
    "arch",
    "available",
    "unavailable_reason",
    "model_string",
    "paper_model",
    "param_count",
    "notes",
]
# Extra metadata columns (kept by the zoo loader as metadata), written after compare_*.
EXTRA_COLUMNS = [
    "library_param_count",
    "paper_source",
    "checkpoint_key",
    "strip_prefix",
    "checkpoint",
]

RANDOM_SEED = 0
PARAM_TOLERANCE = 0.01

TRAIN_DATA_SIZE = {
    "imagenet1k": 1_281_167,
    "imagenet21k": 14_197_122,
    "wit400m": 400_000_000,
    "yfcc15m": 15_000_000,
    "cc12m": 12_423_374,
    "taskonomy": 4_500_000,
    "coco2017": 118_287,
    "ig1b": 1_000_000_000,
    "ig1b+imagenet1k": 1_001_281_167,
    "vggface2": 3_310_000,
    "laion400m": 413_000_000,
    "laion2b": 2_320_000_000,
    "laion5b": 5_850_000_000,
    "laion-aesthetic": 900_000_000,
    "datacomp1b": 1_400_000_000,
    "datacomp-l": 140_000_000,
    "datacomp-m": 14_000_000,
    "datacomp-s": 1_400_000,
    "commonpool-xl": 12_800_000_000,
    "commonpool-l": 1_280_000_000,
    "commonpool-m": 128_000_000,
    "commonpool-s": 12_800_000,
    "dfn2b": 2_000_000_000,
    "dfn5b": 5_000_000_000,
    "metaclip400m": 400_000_000,
    "metaclip2.5b": 2_500_000_000,
    "webli": 10_000_000_000,
    "merged2b": 2_000_000_000,
}


# --------------------------------------------------------------------------------------
# Mapping table: paper `model` -> today's identifier
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mapping:
    """How one paper model (trained and, if present, its random twin) is loaded today."""

    source: str
    name: str
    weights: str = "pretrained"
    arch: str = ""
    available: bool = True
    reason: str = ""
    notes: str = ""
    state_key: str = ""
    key_prefix: str = ""
    extra: dict = field(default_factory=dict)


_TV = "torchvision"
TORCHVISION_MODELS = [
    "alexnet",
    "vgg16",
    "resnet18",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "googlenet",
    "mnasnet1_0",
    "mobilenet_v2",
    "shufflenet_v2_x1_0",
    "squeezenet1_0",
]

_AUGREG_NOTE = (
    "paper-era timm (>=0.4.10) default weights: AugReg ImageNet-21k pretraining then "
    "ImageNet-1k fine-tuning, although the paper labels the diet imagenet"
)
_SWIN22K_NOTE = (
    "paper-era timm default for this name was the ImageNet-22k-pretrained, 1k-fine-tuned "
    "checkpoint (swin_*_22kto1k), although the paper labels the diet imagenet"
)

# paper model -> (timm name today, pretrained tag, note)
TIMM_MODELS: dict[str, tuple[str, str, str]] = {
    "coat_lite_tiny": ("coat_lite_tiny", "in1k", ""),
    "convit_base": ("convit_base", "fb_in1k", ""),
    "convit_tiny": ("convit_tiny", "fb_in1k", ""),
    "convmixer_768_32": ("convmixer_768_32", "in1k", ""),
    "convnext_base": ("convnext_base", "fb_in1k", ""),
    "convnext_base_in22k": ("convnext_base", "fb_in22k", "timm renamed convnext_base_in22k"),
    "convnext_large": ("convnext_large", "fb_in1k", ""),
    "convnext_large_in22k": ("convnext_large", "fb_in22k", "timm renamed convnext_large_in22k"),
    "crossvit_base_240": ("crossvit_base_240", "in1k", ""),
    "cspresnet50": ("cspresnet50", "ra_in1k", ""),
    "deit_base_patch16_224": ("deit_base_patch16_224", "fb_in1k", ""),
    "dla34": ("dla34", "in1k", ""),
    "eca_nfnet_l0": ("eca_nfnet_l0", "ra2_in1k", ""),
    "efficientnet_b1": ("efficientnet_b1", "ft_in1k", ""),
    "efficientnet_b3": ("efficientnet_b3", "ra2_in1k", ""),
    "ghostnet_100": ("ghostnet_100", "in1k", ""),
    "gmixer_24_224": ("gmixer_24_224", "ra3_in1k", ""),
    "gmlp_s16_224": ("gmlp_s16_224", "ra3_in1k", ""),
    "hardcorenas_a": ("hardcorenas_a", "miil_green_in1k", ""),
    "hardcorenas_f": ("hardcorenas_f", "miil_green_in1k", ""),
    "inception_v3": ("inception_v3", "tv_in1k", "paper-era timm default = torchvision weights"),
    "jx_nest_tiny": ("nest_tiny_jx", "goog_in1k", "timm renamed jx_nest_tiny -> nest_tiny_jx"),
    "levit_128": ("levit_128", "fb_dist_in1k", ""),
    "mixer_b16_224": ("mixer_b16_224", "goog_in21k_ft_in1k", _AUGREG_NOTE.replace("AugReg ", "")),
    "mixer_b16_224_in21k": (
        "mixer_b16_224",
        "goog_in21k",
        "timm's deprecation map points mixer_b16_224_in21k to goog_in21k_ft_in1k, but the "
        "paper's parameter count has the 21843-class head: goog_in21k",
    ),
    "mixer_l16_224": ("mixer_l16_224", "goog_in21k_ft_in1k", _AUGREG_NOTE.replace("AugReg ", "")),
    "mixer_l16_224_in21k": (
        "mixer_l16_224",
        "goog_in21k",
        "timm's deprecation map points mixer_l16_224_in21k to goog_in21k_ft_in1k, but the "
        "paper's parameter count has the 21843-class head: goog_in21k",
    ),
    "mobilenetv3_large_100": ("mobilenetv3_large_100", "ra_in1k", ""),
    "nf_resnet50": ("nf_resnet50", "ra2_in1k", ""),
    "nfnet_l0": ("nfnet_l0", "ra2_in1k", ""),
    "pit_b_224": ("pit_b_224", "in1k", ""),
    "pit_ti_224": ("pit_ti_224", "in1k", ""),
    "poolformer_s36": ("poolformer_s36", "sail_in1k", ""),
    "regnetx_064": ("regnetx_064", "pycls_in1k", ""),
    "regnety_064": (
        "regnety_064",
        "pycls_in1k",
        "paper-era timm default = pycls weights (ra3_in1k was added later)",
    ),
    "resmlp_12_224": ("resmlp_12_224", "fb_in1k", ""),
    "resmlp_24_224": ("resmlp_24_224", "fb_in1k", ""),
    "resmlp_36_224": ("resmlp_36_224", "fb_in1k", ""),
    "resmlp_big_24_224": ("resmlp_big_24_224", "fb_in1k", ""),
    "resmlp_big_24_224_in22ft1k": (
        "resmlp_big_24_224",
        "fb_in22k_ft_in1k",
        "timm renamed resmlp_big_24_224_in22ft1k",
    ),
    "semnasnet_100": ("semnasnet_100", "rmsp_in1k", ""),
    "seresnext50_32x4d": ("seresnext50_32x4d", "racm_in1k", ""),
    "skresnext50_32x4d": ("skresnext50_32x4d", "ra_in1k", ""),
    "swin_base_patch4_window7_224": (
        "swin_base_patch4_window7_224",
        "ms_in22k_ft_in1k",
        _SWIN22K_NOTE,
    ),
    "swin_base_patch4_window7_224_in22k": (
        "swin_base_patch4_window7_224",
        "ms_in22k",
        "timm renamed swin_base_patch4_window7_224_in22k",
    ),
    "swin_large_patch4_window7_224": (
        "swin_large_patch4_window7_224",
        "ms_in22k_ft_in1k",
        _SWIN22K_NOTE,
    ),
    "swin_large_patch4_window7_224_in22k": (
        "swin_large_patch4_window7_224",
        "ms_in22k",
        "timm renamed swin_large_patch4_window7_224_in22k",
    ),
    "swin_tiny_patch4_window7_224": ("swin_tiny_patch4_window7_224", "ms_in1k", ""),
    "tnt_s_patch16_224": ("tnt_s_patch16_224", "in1k", ""),
    "visformer_small": ("visformer_small", "in1k", ""),
    "vit_base_patch16_224": ("vit_base_patch16_224", "augreg_in21k_ft_in1k", _AUGREG_NOTE),
    "vit_base_patch16_224_in21k": (
        "vit_base_patch16_224",
        "augreg_in21k",
        "timm renamed vit_base_patch16_224_in21k",
    ),
    "vit_base_patch32_224": ("vit_base_patch32_224", "augreg_in21k_ft_in1k", _AUGREG_NOTE),
    "vit_base_patch32_224_in21k": (
        "vit_base_patch32_224",
        "augreg_in21k",
        "timm renamed vit_base_patch32_224_in21k",
    ),
    "vit_base_r50_s16_224_in21k": (
        "vit_base_r50_s16_224",
        "orig_in21k",
        "timm renamed vit_base_r50_s16_224_in21k (ResNet-50 stem + ViT-B/16)",
    ),
    "vit_large_patch16_224": ("vit_large_patch16_224", "augreg_in21k_ft_in1k", _AUGREG_NOTE),
    "vit_large_patch16_224_in21k": (
        "vit_large_patch16_224",
        "augreg_in21k",
        "timm renamed vit_large_patch16_224_in21k",
    ),
    "vit_small_patch16_224": ("vit_small_patch16_224", "augreg_in21k_ft_in1k", _AUGREG_NOTE),
    "vit_small_patch16_224_in21k": (
        "vit_small_patch16_224",
        "augreg_in21k",
        "timm renamed vit_small_patch16_224_in21k",
    ),
    "vit_small_patch32_224": ("vit_small_patch32_224", "augreg_in21k_ft_in1k", _AUGREG_NOTE),
    "vit_small_patch32_224_in21k": (
        "vit_small_patch32_224",
        "augreg_in21k",
        "timm renamed vit_small_patch32_224_in21k",
    ),
    "vit_tiny_patch16_224": ("vit_tiny_patch16_224", "augreg_in21k_ft_in1k", _AUGREG_NOTE),
    "xception": ("legacy_xception", "tf_in1k", "timm renamed xception -> legacy_xception"),
    "xcit_nano_12_p16_224": ("xcit_nano_12_p16_224", "fb_in1k", ""),
    "xcit_nano_12_p8_224": ("xcit_nano_12_p8_224", "fb_in1k", ""),
    # DINO ViT and SEER RegNets are published in timm with the very checkpoints the paper used.
    "dino_vitb16": (
        "vit_base_patch16_224",
        "dino",
        "facebookresearch/dino ViT-B/16 (timm tag dino)",
    ),
    "RegNet-32Gf-SEER": (
        "regnety_320",
        "seer",
        "VISSL SEER RegNetY-32GF (timm tag seer, same URL)",
    ),
    "RegNet-32Gf-SEER-INFT": (
        "regnety_320",
        "seer_ft_in1k",
        "VISSL SEER RegNetY-32GF fine-tuned on ImageNet-1k (timm tag seer_ft_in1k, same URL; 384 px)",
    ),
    "RegNet-64Gf-SEER": (
        "regnety_640",
        "seer",
        "VISSL SEER RegNetY-64GF (timm tag seer, same URL)",
    ),
    "RegNet-64Gf-SEER-INFT": (
        "regnety_640",
        "seer_ft_in1k",
        "VISSL SEER RegNetY-64GF fine-tuned on ImageNet-1k (timm tag seer_ft_in1k, same URL; 384 px)",
    ),
    "RegNet-128Gf-SEER": (
        "regnety_1280",
        "seer",
        "VISSL SEER RegNetY-128GF (timm tag seer, same URL)",
    ),
    "RegNet-128Gf-SEER-INFT": (
        "regnety_1280",
        "seer_ft_in1k",
        "VISSL SEER RegNetY-128GF fine-tuned on ImageNet-1k (timm tag seer_ft_in1k, same URL; 384 px)",
    ),
}

# CLIP: OpenAI weights, trained with QuickGELU -> the open_clip "-quickgelu" configs.
CLIP_MODELS = {
    "RN50": "RN50-quickgelu",
    "RN101": "RN101-quickgelu",
    "ViT-B/16": "ViT-B-16-quickgelu",
    "ViT-B/32": "ViT-B-32-quickgelu",
    "ViT-L/14": "ViT-L-14-quickgelu",
}

_VISSL = "https://dl.fbaipublicfiles.com/vissl/model_zoo/"
_VISSL_TRUNK = "classy_state_dict.base_model.model.trunk"
_VISSL_NOTE = (
    "VISSL checkpoint: trunk keys '_feature_blocks.<torchvision resnet50 name>'; no "
    "classifier in the checkpoint (torchvision fc stays untrained: drop it for features)"
)
_HEADLESS_RN50 = (
    "checkpoint has no classifier (torchvision fc stays untrained: drop it for features)"
)

TASKONOMY_FILES = {
    "autoencoding": "e35146c09253720e97c0a7f8ee4e896ac931f5faa1449df003d81e6089ac6307",
    "class_object": "4a4e42dad58066039a0d2f9d128bb32e93a7e4aa52edb2d2a07bcdd1a6536c18",
    "class_scene": "ad85764467cddafd98211313ceddebb98adf2a6bee2cedfe0b922a37ae65eaf8",
    "curvature": "3767cf5d06d9c6bca859631eb5a3c368d66abeb15542171b94188ffbe47d7571",
    "denoising": "b64cab95af4a2c565066a7e8effaf37d6586c3b9389b47fff9376478d849db38",
    "depth_euclidean": "88f18d41313de7dbc88314a7f0feec3023047303d94d73eb8622dc40334ef149",
    "depth_zbuffer": "cc343a8ed622fd7ee3ce54398be8682bbbbfb5d11fa80e8d03a56a5ae4e11b09",
    "edge_occlusion": "5ac3f3e918131f61e01fe95e49f462ae2fc56aa463f8d353ca84cd4e248b9c08",
    "edge_texture": "be2d686a6a4dfebe968d16146a17176eba37e29f736d5cd9a714317c93718810",
    "egomotion": "9aa647c34bf98f9e491e0b37890d77566f6ae35ccf41d9375c674511318d571c",
    "fixated_pose": "78cf321518abc16f9f4782b9e5d4e8f5d6966c373d951928a26f872e55297567",
    "inpainting": "bf96fbaaea9268a820a19a1d13dbf6af31798f8983c6d9203c00fab2d236a142",
    "jigsaw": "0c2b342c9080f8713c178b04aa6c581ed3a0112fecaf78edc4c04e0a90516e39",
    "keypoints2d": "6b77695acff4c84091c484a7b128a1e28a7e9c36243eda278598f582cf667fe0",
    "keypoints3d": "7e3f1ec97b82ae30030b7ea4fec2dc606b71497d8c0335d05f0be3dc909d000d",
    "nonfixated_pose": "3433a600ca9ff384b9898e55d86a186d572c2ebbe4701489a373933e3cfd5b8b",
    "normal": "f5e2c7737e4948e3b2a822f584892c342eaabbe66661576ba50db7cdd40561c5",
    "point_matching": "4bd2a6b2909d9998fabaf0278ab568f42f2b692a648e28555ede6c6cda5361f4",
    "reshading": "de456246e171dc8407fb2951539aa60d75925ae0f1dbb43f110b7768398b36a6",
    "room_layout": "1e1662f43b834261464b1825227a04efba59b50cc8883bee9adc3ddafd4796c1",
    "segment_semantic": "bb3007244520fc89cd111e099744a22b1e5c98cd83ed3f116fbff6376d220127",
    "segment_unsup25d": "7d12d2500c18c003ffc23943214f5dfd74932f0e3d03dde2c3a81ebc406e31a0",
    "segment_unsup2d": "b679053a920e8bcabf0cd454606098ae85341e054080f2be29473971d4265964",
    "vanishing_point": "afd2ae9b71d46a54efc5231b3e38ebc3e35bfab78cb0a78d9b75863a240b19a8",
}
_TASKONOMY_URL = (
    "https://github.com/alexsax/visual-prior/raw/networks/assets/pytorch/{task}_encoder-{sha}.pth"
)
_TASKONOMY_NOTE = (
    "visualpriors TaskonomyEncoder (a ResNet-50 variant: layer1/layer2 downsample in their last "
    "block, layer3/layer4 unstrided, ceil-mode stem max-pool, 2048->8 compress conv + BN + GroupNorm)"
)

_DETECTRON = "https://dl.fbaipublicfiles.com/detectron2/"
_DETECTRON_REASON = (
    "needs detectron2: R-50-FPN detector (MSRA ResNet with stride in the 1x1 conv and "
    "FrozenBN, FPN, RPN/ROI heads); not equivalent to a torchvision/timm architecture"
)

_IPCL = "https://visionlab-pretrainedmodels.s3.amazonaws.com/project_instancenet/ipcl/"
_IPCL_NOTE = (
    "open_ipcl alexnet_gn (AlexNet with GroupNorm, 128-d L2-normalised embedding), written in "
    "zooscope/zoo/sources/ipcl_source.py with open_ipcl's parameter names"
)

_YOLO_NOTE = (
    "YOLOv5 (CSP-Darknet + PANet + Detect) written in zooscope/zoo/sources/yolo_source.py with "
    "yolov5's parameter names; the pickled checkpoint is read without running its code"
)

_BIT_REASON = (
    "weights are published only as TF-Hub SavedModels (needs tensorflow + tensorflow_hub "
    "to convert); the architecture is timm resnetv2_50x1_bit but no PyTorch checkpoint exists"
)


def _special_mappings() -> dict[str, Mapping]:
    """Mappings for the paper models that are not plain torchvision/timm/CLIP rows."""
    m: dict[str, Mapping] = {}
    vissl = {
        "ResNet50-BarlowTwins-BS2048": "barlow_twins/barlow_twins_32gpus_4node_imagenet1k_1000ep_resnet50.torch",
        "ResNet50-ClusterFit-16K-RotNet": "converted_vissl_rn50_rotnet_16kclusters_in1k_ep105.torch",
        "ResNet50-JigSaw-Goyal19": "converted_vissl_rn50_jigsaw_in1k_goyal19.torch",
        "ResNet50-JigSaw-P100": (
            "jigsaw_rn50_in1k_ep105_perm2k_jigsaw_8gpu_resnet_17_07_20.db174a43/"
            "model_final_checkpoint_phase104.torch"
        ),
        "ResNet50-MoCoV2-BS256": "moco_v2_1node_lr.03_step_b32_zero_init/model_final_checkpoint_phase199.torch",
        "ResNet50-PIRL": (
            "pirl_jigsaw_4node_pirl_jigsaw_4node_resnet_22_07_20.34377f59/"
            "model_final_checkpoint_phase799.torch"
        ),
        "ResNet50-RotNet": (
            "rotnet_rn50_in1k_ep105_rotnet_8gpu_resnet_17_07_20.46bada9f/model_final_checkpoint_phase125.torch"
        ),
        "ResNet50-SimCLR": (
            "simclr_rn50_1000ep_simclr_8node_resnet_16_07_20.afe428c7/model_final_checkpoint_phase999.torch"
        ),
        "ResNet50-SwAV-BS4096-2x224+6x96": (
            "swav_8node_2x224_rn50_in1k_swav_8node_resnet_30_07_20.c8fd7169/"
            "model_final_checkpoint_phase399.torch"
        ),
    }
    for model, path in vissl.items():
        m[model] = Mapping(
            "checkpoint",
            _VISSL + path,
            arch="torchvision:resnet50",
            notes=_VISSL_NOTE,
            state_key=_VISSL_TRUNK,
            key_prefix="_feature_blocks.",
        )
    m["ResNet50-DeepClusterV2-2x224+6x96"] = Mapping(
        "checkpoint",
        _VISSL + "deepclusterv2_800ep_pretrain.pth.tar",
        arch="torchvision:resnet50",
        notes="facebookresearch/swav checkpoint: keys 'module.<torchvision resnet50 name>' plus "
        "projection_head/prototypes (ignored); " + _HEADLESS_RN50,
        key_prefix="module.",
    )
    m["dino_resnet50"] = Mapping(
        "checkpoint",
        "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
        arch="torchvision:resnet50",
        notes="facebookresearch/dino ResNet-50: torchvision keys; " + _HEADLESS_RN50,
    )

    slip = {
        "ViT-S-SimCLR": ("simclr_small_25ep.pt", "vit_small_patch16_224"),
        "ViT-S-CLIP": ("clip_small_25ep.pt", "vit_small_patch16_224"),
        "ViT-S-SLIP": ("slip_small_25ep.pt", "vit_small_patch16_224"),
        "ViT-B-SimCLR": ("simclr_base_25ep.pt", "vit_base_patch16_224"),
        "ViT-B-CLIP": ("clip_base_25ep.pt", "vit_base_patch16_224"),
        "ViT-B-SLIP": ("slip_base_25ep.pt", "vit_base_patch16_224"),
        "ViT-L-SimCLR": ("simclr_large_25ep.pt", "vit_large_patch16_224"),
        "ViT-L-CLIP": ("clip_large_25ep.pt", "vit_large_patch16_224"),
        "ViT-L-SLIP": ("slip_large_25ep.pt", "vit_large_patch16_224"),
        "ViT-L-CLIP-CC12M": ("clip_base_cc12m_35ep.pt", "vit_base_patch16_224"),
        "ViT-L-SLIP-CC12M": ("slip_base_cc12m_35ep.pt", "vit_base_patch16_224"),
    }
    for model, (fname, arch) in slip.items():
        note = (
            "facebookresearch/SLIP: image tower = timm "
            f"{arch}(num_classes=0) under 'module.visual.' (text tower and projections ignored); "
            "SLIP preprocessing: resize 224, ImageNet mean/std"
        )
        if model.endswith("CC12M"):
            note += (
                "; despite the paper's 'ViT-L' name this checkpoint is a ViT-B/16 trained on CC12M"
            )
        m[model] = Mapping(
            "checkpoint",
            "https://dl.fbaipublicfiles.com/slip/" + fname,
            arch="timm:" + arch,
            notes=note,
            state_key="state_dict",
            key_prefix="module.visual.",
        )

    for task, sha in TASKONOMY_FILES.items():
        m[task] = Mapping(
            "taskonomy",
            "encoder",
            notes=_TASKONOMY_NOTE,
            extra={"checkpoint": _TASKONOMY_URL.format(task=task, sha=sha)},
        )
    m["random_weights"] = Mapping(
        "taskonomy",
        "encoder",
        weights="random",
        notes="randomly initialised TaskonomyEncoder (no checkpoint)",
    )

    detectron = {
        "faster_rcnn_R_50_FPN_3x": "COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl",
        "retinanet_R_50_FPN_3x": "COCO-Detection/retinanet_R_50_FPN_3x/190397829/model_final_5bd44e.pkl",
        "mask_rcnn_R_50_FPN_3x": (
            "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl"
        ),
        "keypoint_rcnn_R_50_FPN_3x": "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x/137849621/model_final_a6e10b.pkl",
    }
    for model, path in detectron.items():
        m[model] = Mapping(
            "checkpoint", _DETECTRON + path, available=False, reason=_DETECTRON_REASON
        )

    ipcl = {
        "alexnet_gn_ipcl_imagenet": (
            "06_instance_imagenet_AlexNet_n5_lr03_pct40_t07_div1000_e100_bs128_bm20_gn_stack_"
            "final_weights_only.pth.tar",
            "open_ipcl ref #1 (the paper's code maps the ImageNet model to ipcl1; ref #6 is the "
            "ImageNet model trained with the same augmentations as the other diets)",
        ),
        "alexnet_gn_ipcl_openimages": (
            "alexnet_gn_u128_openimagesv6_final_weights_only.pth.tar",
            "open_ipcl ref #7",
        ),
        "alexnet_gn_ipcl_places256": (
            "alexnet_gn_u128_places2_final_weights_only.pth.tar",
            "open_ipcl ref #8",
        ),
        "alexnet_gn_ipcl_vggface2": (
            "alexnet_gn_u128_vggface2_lr001_final_weights_only.pth.tar",
            "open_ipcl ref #9",
        ),
    }
    for model, (fname, note) in ipcl.items():
        m[model] = Mapping(
            "ipcl", "alexnet_gn", notes=f"{note}; {_IPCL_NOTE}", extra={"checkpoint": _IPCL + fname}
        )

    for size in ("s", "m", "l"):
        m[f"yolov5{size}"] = Mapping(
            "yolo",
            f"yolov5{size}",
            notes="the paper loaded torch.hub ultralytics/yolov5 (release at extraction time unknown; "
            "v6.0 URL given); " + _YOLO_NOTE,
            extra={
                "checkpoint": f"https://github.com/ultralytics/yolov5/releases/download/v6.0/yolov5{size}.pt"
            },
        )

    m["DPT_Hybrid"] = Mapping(
        "transformers",
        "Intel/dpt-hybrid-midas",
        notes="HF port of MiDaS v3.0 DPT-Hybrid (dpt_hybrid-midas-501f0c75.pt, the paper's torch.hub "
        "intel-isl/MiDaS 'DPT_Hybrid'); random init uses the config and image-processor files zooscope "
        "ships (zooscope/zoo/configs), so it works offline",
    )
    m["MiDaS"] = Mapping(
        "midas",
        "midas_v21",
        notes="MiDaS v2.1 MidasNet (ResNeXt-101 WSL encoder + RefineNet decoder), written in "
        "zooscope/zoo/sources/midas_source.py with MiDaS's parameter names",
        extra={
            "checkpoint": "https://github.com/AlexeyAB/MiDaS/releases/download/midas_dpt/midas_v21-f6b98070.pt"
        },
    )

    for expert in (
        "Abstraction",
        "Animal",
        "Arthropod",
        "Bird",
        "Flower",
        "Food",
        "Instrument",
        "Mammal",
        "Object",
        "Relation",
        "Vehicle",
    ):
        m[f"BiT-Expert-ResNet-V2-{expert}"] = Mapping(
            "checkpoint",
            f"https://tfhub.dev/google/experts/bit/r50x1/in21k/{expert.lower()}/1",
            arch="timm:resnetv2_50x1_bit",
            available=False,
            reason=_BIT_REASON,
        )
    return m


def build_mapping() -> dict[str, Mapping]:
    """Return the full mapping, paper ``model`` -> :class:`Mapping`."""
    mapping: dict[str, Mapping] = {}
    for model in TORCHVISION_MODELS:
        notes = ""
        if model == "googlenet":
            notes = (
                "torchvision builds googlenet with aux classifiers when weights=None; pass "
                "aux_logits=False for a random twin matching the trained model"
            )
        mapping[model] = Mapping(_TV, model, "IMAGENET1K_V1", notes=notes)
    for model, (name, tag, note) in TIMM_MODELS.items():
        mapping[model] = Mapping("timm", name, tag, notes=note)
    for model, name in CLIP_MODELS.items():
        mapping[model] = Mapping(
            "open_clip",
            name,
            "openai",
            notes="OpenAI CLIP image encoder (QuickGELU config)",
        )
    mapping.update(_special_mappings())
    return mapping


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------
def normalise_task(row: pd.Series) -> str:
    """Map the paper's ``train_task`` (plus contrast labels) to the manifest vocabulary."""
    task, model = row["train_task"], row["model"]
    if task in ("classification", "random", "detection", "segmentation"):
        return task
    if task == "clip":
        return "language-aligned"
    if task == "slip":
        return "self-supervised-contrastive" if "SimCLR" in model else "language-aligned"
    if task == "selfsupervised":
        if row.get("compare_goal_contrastive") == "Non-Contrastive" or model.startswith("dino"):
            return "self-supervised-noncontrastive"
        return "self-supervised-contrastive"
    if task == "ipcl":
        return "self-supervised-contrastive"
    if task == "seer":
        return "classification" if model.endswith("-INFT") else "self-supervised-contrastive"
    if task == "taskonomy":
        return "random" if model == "random_weights" else f"taskonomy-{model}"
    if task == "yolo":
        return "detection"
    if task == "monoculardepth":
        return "depth"
    if task == "bit_expert":
        return "classification"
    raise ValueError(f"no task normalisation rule for the paper's train_task {task!r} ({model})")


_TRAIN_DATA = {
    "imagenet": "imagenet1k",
    "imagenet21k": "imagenet21k",
    "openai400M": "wit400m",
    "YFCC15M": "yfcc15m",
    "big_transfer": "imagenet21k",
    "random1B": "ig1b",
    "coco2017": "coco2017",
    "coco,voc": "coco2017",
    "taskonomy": "taskonomy",
    "openimages": "openimages",
    "places256": "places256",
    "vggface2": "vggface2",
}


def normalise_train_data(row: pd.Series) -> str:
    """Map the paper's ``train_data`` to the manifest vocabulary ('' for random models)."""
    data, model = row["train_data"], row["model"]
    if row["task"] == "random" or pd.isna(data):
        return ""
    if isinstance(data, str) and data.startswith("ReDWeb"):
        return "midas-mix10"
    if model.endswith("CC12M"):
        return "cc12m"
    if model.endswith("-SEER-INFT"):
        return "ig1b+imagenet1k"
    if data not in _TRAIN_DATA:
        raise ValueError(f"no train_data normalisation rule for {data!r} ({model})")
    return _TRAIN_DATA[data]


def safe_uid(model_string: str) -> str:
    """Make a paper ``model_string`` a valid, readable ``model_uid``."""
    uid = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_string)
    return re.sub(r"^[^A-Za-z0-9]+", "", uid)


# --------------------------------------------------------------------------------------
# Parameter counts on the meta device
# --------------------------------------------------------------------------------------
def build_meta_module(source: str, name: str, weights: str, arch: str = ""):
    """Instantiate an architecture on the ``meta`` device (no memory, no weights).

    Returns ``None`` for rows whose architecture cannot be built by our libraries.
    """
    import torch

    if source == "checkpoint":
        if not arch:
            return None
        source, name = arch.split(":", 1)
        weights = "random"
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if source in FAMILY_SOURCES:
            from zooscope.zoo.sources import get_source

            return get_source(source).models[name].build()
        if source == "torchvision":
            import torchvision

            kwargs = {"aux_logits": False} if name in ("googlenet", "inception_v3") else {}
            return torchvision.models.get_model(name, weights=None, **kwargs)
        if source == "timm":
            import timm

            # The tag carries the head size (e.g. 21843 classes for in21k weights).
            full = name if weights == "random" else f"{name}.{weights}"
            return timm.create_model(full, pretrained=False)
        if source == "open_clip":
            import open_clip

            return open_clip.create_model(name, pretrained=None, device="meta").visual
        if source == "transformers":
            return None
    raise ValueError(f"unknown source {source!r}")


def count_parameters(module) -> int:
    """Total number of parameters of ``module``."""
    return int(sum(p.numel() for p in module.parameters()))


def _direct_params_on_containers(module) -> int:
    """Parameters registered directly on modules that also have children.

    The paper's counter missed exactly these (ViT ``pos_embed``/``cls_token`` on the root,
    NesT per-level ``pos_embed``...).
    """
    total = 0
    for sub in module.modules():
        if next(sub.children(), None) is not None:
            total += sum(p.numel() for p in sub.parameters(recurse=False))
    return total


def _classifier_params(module) -> int:
    get_classifier = getattr(module, "get_classifier", None)
    if callable(get_classifier):
        return sum(p.numel() for p in get_classifier().parameters())
    fc = getattr(module, "fc", None)
    return sum(p.numel() for p in fc.parameters()) if fc is not None else 0


def explain_param_mismatch(module, paper: float, library: int, known: str = "") -> str:
    """Say why the paper's count differs from the library's by more than 1 %, or ''.

    ``known`` is a hand-written explanation used when no simple rule matches.
    """
    if pd.isna(paper) or library == 0 or abs(library - paper) <= PARAM_TOLERANCE * paper:
        return ""
    paper = int(paper)
    container = _direct_params_on_containers(module)
    head = _classifier_params(module)
    norm_module = getattr(module, "norm", None)
    norm = sum(p.numel() for p in norm_module.parameters()) if norm_module is not None else 0
    no_head = "the paper's model has no classifier head"
    skipped = "the paper's counter skipped parameters registered on container modules (pos_embed/cls_token)"
    candidates = [
        (container, skipped),
        (head, no_head),
        (head + container, f"{no_head}, and {skipped}"),
        (head + norm, f"{no_head} nor final norm layer"),
        (head + norm + container, f"{no_head} nor final norm layer, and {skipped}"),
    ]
    why = known or "unexplained"
    for diff, reason in candidates:
        if diff and library - diff == paper:
            why = reason
            break
    return f"param count mismatch: paper {paper} vs library {library} ({(library - paper) / paper:+.1%}; {why})"


_CLIP_COUNT = (
    "the paper counted only part of the image tower (for the ResNets exactly the trunk "
    "without the attention-pooling head); library = full open_clip visual tower"
)
_SEER_COUNT = (
    "timm builds the SEER trunk only (plus the 1000-class head for seer_ft_in1k); the paper "
    "built the model through a VISSL evaluation config that probably attached extra heads"
)
# Hand-written explanations for mismatches no simple rule explains.
KNOWN_PARAM_MISMATCH = {
    "RN50": _CLIP_COUNT,
    "RN101": _CLIP_COUNT,
    "ViT-B/16": _CLIP_COUNT,
    "ViT-B/32": _CLIP_COUNT,
    "ViT-L/14": _CLIP_COUNT,
    "vit_base_r50_s16_224_in21k": (
        "timm's orig_in21k weights drop the paper-era pre-logits layer and 21843-class head "
        "(num_classes=0); results_summary's count 115125907 = library + pre-logits + head - "
        "pos_embed/cls_token"
    ),
    "MiDaS": (
        "the paper counted the parameters used in the forward pass: MiDaS never calls "
        "refinenet4.resConfUnit1 (1180160 parameters)"
    ),
    **{
        f"RegNet-{size}-SEER{suffix}": _SEER_COUNT
        for size in ("32Gf", "64Gf", "128Gf")
        for suffix in ("", "-INFT")
    },
}


# --------------------------------------------------------------------------------------
# Conwell 2024 manifest
# --------------------------------------------------------------------------------------
def load_paper_models(reference: Path) -> pd.DataFrame:
    """The 224 paper models with metadata, contrasts, source and parameter counts.

    Returns
    -------
    pandas.DataFrame, shape (224, n_columns)
        One row per ``model_string`` of ``results_summary.csv``.
    """
    results = pd.read_csv(reference / "results_summary.csv")
    models = results.drop_duplicates("model_string").drop(columns=["metric", "score"])
    contrasts = pd.read_csv(reference / "model_contrasts.csv").drop_duplicates("model_string")
    compare_cols = [c for c in models.columns if c.startswith("compare_")]
    check = models.merge(contrasts, on="model_string", suffixes=("", "_mc"), how="left")
    for col in compare_cols:
        left, right = check[col].fillna(""), check[f"{col}_mc"].fillna("")
        if not left.equals(right):
            raise ValueError(f"{col} differs between results_summary.csv and model_contrasts.csv")
    extra = contrasts[["model_string", "model_source", "task_cluster", "weights_url"]]
    models = models.merge(extra, on="model_string", how="left", validate="one_to_one")
    params = pd.read_csv(reference / "model_statistics" / "parameter_count.csv")
    models = models.merge(params, on="model_string", how="left", validate="one_to_one")
    # parameter_count.csv names the IPCL models by `model` (no "_ipcl" suffix).
    by_model = params.set_index("model_string")["total_params"]
    models["total_params"] = models["total_params"].fillna(models["model"].map(by_model))
    # parameter_count.csv lacks a few models: fall back on results_summary's count.
    models["param_count"] = models["total_params"].fillna(models["total_parameter_count"])
    if models["model_string"].nunique() != len(models):
        raise ValueError("duplicate model_string in results_summary.csv")
    return models.reset_index(drop=True)


def _task_cluster(row: pd.Series) -> str:
    if row["task"] == "random":
        # The typology gives random twins their trained twin's cluster (e.g. Semantic).
        return "Random"
    cluster = row["task_cluster"]
    if pd.isna(cluster):
        # The paper leaves the IPCL models without a cluster; they are self-supervised.
        return "SelfSupervised"
    return str(cluster).replace("Self-Supervised", "SelfSupervised")


def _arch_class(row: pd.Series) -> str:
    if pd.isna(row["model_class"]):
        if row["model"] == "MiDaS":
            return "Convolutional"  # ResNeXt-101 encoder; the paper leaves it empty
        raise ValueError(f"no model_class for {row['model_string']}")
    return str(row["model_class"])


def build_conwell2024(reference: Path, count_params: bool = True) -> pd.DataFrame:
    """Build the Conwell et al. 2024 manifest (224 rows).

    Parameters
    ----------
    reference : Path
        Folder holding the paper's source data (``results_summary.csv``...).
    count_params : bool
        Instantiate every architecture on the meta device and compare parameter counts.

    Returns
    -------
    pandas.DataFrame, shape (224, n_columns)
    """
    paper = load_paper_models(reference)
    mapping = build_mapping()
    compare_cols = [c for c in paper.columns if c.startswith("compare_")]
    rows = []
    for _, row in paper.iterrows():
        model = row["model"]
        if model not in mapping:
            raise KeyError(f"no mapping for paper model {model!r} ({row['model_string']})")
        spec = mapping[model]
        task = normalise_task(row)
        row = row.copy()
        row["task"] = task
        is_random = task == "random"
        weights = "random" if is_random else spec.weights
        train_data = normalise_train_data(row)
        notes = [spec.notes] if spec.notes else []
        out = {
            "model_uid": safe_uid(row["model_string"]),
            "source": spec.source,
            "name": spec.name,
            "weights": weights,
            "display_name": row["display_name"],
            "arch_class": _arch_class(row),
            "task": task,
            "task_cluster": _task_cluster(row),
            "train_data": train_data,
            "train_data_size": TRAIN_DATA_SIZE.get(train_data),
            "seed": RANDOM_SEED if is_random else None,
            "arch": spec.arch,
            "available": spec.available,
            "unavailable_reason": spec.reason,
            "model_string": row["model_string"],
            "paper_model": model,
            "param_count": None if pd.isna(row["param_count"]) else int(row["param_count"]),
            "notes": "",
            **{c: row[c] for c in compare_cols},
            "library_param_count": None,
            "paper_source": row["model_source"],
            "checkpoint_key": spec.state_key,
            "strip_prefix": spec.key_prefix,
            "checkpoint": spec.extra.get("checkpoint", ""),
        }
        if count_params:
            module = build_meta_module(spec.source, spec.name, weights, spec.arch)
            if module is not None:
                n = count_parameters(module)
                out["library_param_count"] = n
                mismatch = explain_param_mismatch(
                    module, row["param_count"], n, KNOWN_PARAM_MISMATCH.get(model, "")
                )
                if mismatch:
                    notes.append(mismatch)
        out["notes"] = "; ".join(notes)
        rows.append(out)
    frame = pd.DataFrame(rows)
    return _order_columns(frame, compare_cols)


def _order_columns(frame: pd.DataFrame, compare_cols: list[str]) -> pd.DataFrame:
    for col in REQUIRED_COLUMNS + OPTIONAL_COLUMNS + EXTRA_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    ordered = REQUIRED_COLUMNS + OPTIONAL_COLUMNS + compare_cols + EXTRA_COLUMNS
    frame = frame[ordered]
    for col in ("train_data_size", "seed", "param_count", "library_param_count"):
        frame[col] = frame[col].astype("Int64")
    frame["available"] = frame["available"].map({True: "true", False: "false"})
    return frame


# --------------------------------------------------------------------------------------
# open_clip manifest
# --------------------------------------------------------------------------------------
MAX_VISUAL_PARAMS = 1_000_000_000
# Multilingual text-tower variants: their image towers duplicate plain configs.
SKIP_PREFIXES = ("roberta-", "xlm-roberta-", "nllb-clip-")
OPENCLIP_RANDOM_TWINS = [
    "RN50-quickgelu",
    "RN101-quickgelu",
    "ViT-B-32-quickgelu",
    "ViT-B-16-quickgelu",
    "ViT-L-14-quickgelu",
    "convnext_base",
]

# ordered (prefix of the pretrained tag, normalised train_data)
_TAG_DATA = [
    ("openai", "wit400m"),
    ("laion400m", "laion400m"),
    ("laion2b", "laion2b"),
    ("frozen_laion5b", "laion5b"),
    ("laion5b", "laion5b"),
    ("laion_aesthetic", "laion-aesthetic"),
    ("mscoco_finetuned_laion2b", "laion2b+mscoco"),
    ("datacomp_xl", "datacomp1b"),
    ("datacomp_l", "datacomp-l"),
    ("datacomp_m", "datacomp-m"),
    ("datacomp_s_", "datacomp-s"),
    ("datacomp_s34b", "datacomp1b"),
    ("datacomp1b", "datacomp1b"),
    ("datacompdr", "datacompdr"),
    ("commonpool_xl", "commonpool-xl"),
    ("commonpool_l", "commonpool-l"),
    ("commonpool_m", "commonpool-m"),
    ("commonpool_s", "commonpool-s"),
    ("dfndr2b", "dfndr2b"),
    ("dfn2b", "dfn2b"),
    ("dfn5b", "dfn5b"),
    ("metaclip_400m", "metaclip400m"),
    ("metaclip_fullcc", "metaclip2.5b"),
    ("metaclip_altogether", "metaclip-altogether"),
    ("metaclip2_worldwide", "metaclip2-worldwide"),
    ("merged2b", "merged2b"),
    ("yfcc15m", "yfcc15m"),
    ("cc12m", "cc12m"),
    ("webli", "webli"),
    ("meta", "pe-metaclip5.4b"),
]


def openclip_train_data(model: str, tag: str) -> str:
    """Normalise an open_clip pretrained tag to a dataset name."""
    if model.startswith("ViT-H-14-CLIPA") and tag == "laion2b":
        return "laion2b"
    for prefix, data in _TAG_DATA:
        if tag.startswith(prefix):
            if data.startswith("commonpool"):
                # Filtered CommonPool subsets: commonpool_m_clip_s128m_b4k -> commonpool-m-clip.
                filt = tag.split("_")[2]
                if filt in ("clip", "laion", "image", "text", "basic"):
                    return f"{data}-{filt}"
            return data
    raise ValueError(f"no train_data rule for open_clip tag {model}/{tag}")


def openclip_arch_class(model: str) -> str:
    """Architecture class of an open_clip image tower."""
    if model.startswith(("RN", "convnext")):
        return "Convolutional"
    if model.startswith(("ViTamin", "MobileCLIP-S", "MobileCLIP2-S")):
        return "Hybrid"  # convolutional stages followed by attention stages
    return "Transformer"


def _openclip_family(model: str) -> str:
    return model.removesuffix("-quickgelu")


def canonical_openclip_pairs() -> list[tuple[str, str]]:
    """(model, tag) pairs, each tag under its correct (Quick)GELU config, deduplicated."""
    import open_clip

    pairs = open_clip.list_pretrained()
    available = set(pairs)
    out: list[tuple[str, str]] = []
    for model, tag in pairs:
        quick = bool(open_clip.get_pretrained_cfg(model, tag).get("quick_gelu", False))
        base = _openclip_family(model)
        name = f"{base}-quickgelu" if quick and (f"{base}-quickgelu", tag) in available else base
        if (name, tag) not in available:
            name = model
        if (name, tag) not in out:
            out.append((name, tag))
    return out


def build_openclip() -> pd.DataFrame:
    """Build the open_clip image-encoder manifest (visual-diet contrast at scale)."""
    rows = []
    counts: dict[str, int | None] = {}
    for name, tag in canonical_openclip_pairs():
        if name.startswith(SKIP_PREFIXES):
            logger.info("skip %s/%s: multilingual text-tower variant", name, tag)
            continue
        if name not in counts:
            try:
                counts[name] = count_parameters(build_meta_module("open_clip", name, tag))
            except Exception as err:  # a config that needs an uninstalled extra
                logger.warning("cannot build %s: %s", name, err)
                counts[name] = None
        n = counts[name]
        if n is not None and n > MAX_VISUAL_PARAMS:
            logger.info("skip %s/%s: image tower has %d > 1e9 parameters", name, tag, n)
            continue
        data = openclip_train_data(name, tag)
        rows.append(
            {
                "model_uid": f"openclip_{name}_{tag}",
                "source": "open_clip",
                "name": name,
                "weights": tag,
                "display_name": f"CLIP {_openclip_family(name)} ({tag})",
                "arch_class": openclip_arch_class(name),
                "task": "language-aligned",
                "task_cluster": "Vision-Language",
                "train_data": data,
                "train_data_size": TRAIN_DATA_SIZE.get(data),
                "available": n is not None,
                "unavailable_reason": ""
                if n is not None
                else "open_clip cannot build this config here",
                "param_count": n,
            }
        )
    for name in OPENCLIP_RANDOM_TWINS:
        n = counts.get(name)
        rows.append(
            {
                "model_uid": f"openclip_{name}_random",
                "source": "open_clip",
                "name": name,
                "weights": "random",
                "display_name": f"CLIP {_openclip_family(name)} (random)",
                "arch_class": openclip_arch_class(name),
                "task": "random",
                "task_cluster": "Random",
                "train_data": "",
                "seed": RANDOM_SEED,
                "available": True,
                "param_count": n,
            }
        )
    frame = pd.DataFrame(rows)
    frame["model_uid"] = frame["model_uid"].map(safe_uid)
    frame["arch_family"] = frame["name"].map(_openclip_family)
    trained = frame["weights"] != "random"
    diets = frame[trained].groupby("arch_family")["train_data"].nunique()
    classes = frame[trained].groupby("train_data")["arch_class"].nunique()
    frame["compare_diet"] = frame["train_data"].where(
        trained & frame["arch_family"].map(diets).gt(1), None
    )
    frame["compare_architecture"] = frame["arch_class"].where(
        trained & frame["train_data"].map(classes).gt(1), None
    )
    twins = frame["arch_family"].isin({_openclip_family(n) for n in OPENCLIP_RANDOM_TWINS})
    frame["compare_training"] = None
    frame.loc[twins & ~trained, "compare_training"] = "random"
    frame.loc[twins & trained & (frame["weights"] == "openai"), "compare_training"] = (
        "language-aligned"
    )
    frame.loc[frame["name"].eq("convnext_base") & trained, "compare_training"] = "language-aligned"
    frame = frame.drop(columns="arch_family")
    compare_cols = ["compare_diet", "compare_architecture", "compare_training"]
    frame = _order_columns(frame, compare_cols)
    return frame.drop(columns=["paper_source", "checkpoint_key", "strip_prefix"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "manifests")
    parser.add_argument("--only", choices=("conwell2024", "openclip"), default=None)
    parser.add_argument("--no-param-count", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "conwell2024"):
        frame = build_conwell2024(args.reference, count_params=not args.no_param_count)
        frame.to_csv(args.out_dir / "conwell2024.csv", index=False)
        logger.info("wrote %d rows to %s", len(frame), args.out_dir / "conwell2024.csv")
    if args.only in (None, "openclip"):
        frame = build_openclip()
        frame.to_csv(args.out_dir / "openclip.csv", index=False)
        logger.info("wrote %d rows to %s", len(frame), args.out_dir / "openclip.csv")


if __name__ == "__main__":
    main()
