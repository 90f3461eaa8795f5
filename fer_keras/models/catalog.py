"""Every model the suite knows, before any is built: the table behind ``fer_keras.registry``.

Builders are named as ``"module:function"`` and imported on first build, so validating a
config or listing the models never imports TensorFlow. Add a model: write its builder in a
module of this package (the signature in ``fer_keras.registry``) and add a row here; the
registry-wide tests pick it up without new test code. A builder's extra keywords (and its
trainer's settings) are declared in the row's ``options`` schema, the one place their
defaults live; a training procedure of its own is the row's ``trainer``
(``fer_keras.train.loop`` describes the contract). The choices of an option are named here
once; builders and trainers import them (this module imports no TensorFlow).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from fer_keras.registry import ModelSpec, Option

_Positive = Annotated[int, Field(ge=1)]
_Dropout = Annotated[float, Field(ge=0, lt=1)]

#: ESR (fer_keras.models.esr, fer_keras.train.esr): how branches train, how convolutions pad.
ESR_SCHEDULES = ("joint", "progressive")
ESR_PADDINGS = ("auto", "valid", "same")
#: TLF (fer_keras.models.tlf, fer_keras.train.triplet): the classifier on the embeddings, triplet mining.
TLF_HEADS = ("svm", "lda", "logreg")
TLF_MININGS = ("batch_hard", "batch_all")
#: The triplet embedding's checkpoint criterion (fer_keras.train.triplet.CentroidScore), not the run's.
TLF_CHECKPOINT = "val_centroid_balanced_accuracy"


def _model(builder: str, **meta: Any) -> ModelSpec:
    """A row named after its builder function."""
    return ModelSpec(name=builder.rpartition(":")[2], builder=builder, **meta)


def _app(key: str, paper_name: str, family: str, note: str, min_px: int, params: dict[int, int]) -> ModelSpec:
    """A keras.applications backbone under the protocol head; VGG16 and ResNet50 also take VGGFace weights."""
    return _model(
        f"fer_keras.models.keras_apps:{key}",
        family=family,
        paper_name=paper_name,
        description=f"{paper_name}: {note}, protocol head",
        min_resolution=min_px,
        pretrains=("scratch", "imagenet", "vggface") if key in ("vgg16", "resnet50") else ("scratch", "imagenet"),
        params=params,
        test_resolutions=(min_px,),
    )


SPECS: tuple[ModelSpec, ...] = (
    _model(
        "fer_keras.models.classic:lenet5",
        family="classic",
        paper_name="LeNet5",
        description="LeNet-5 (LeCun et al. 1998): conv 6/16 5x5 + avg pools, FC 120-84; ReLU",
        min_resolution=32,
        default_pooling="flatten",
        params={48: 169_271, 224: 5_407_031},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.classic:alexnet",
        family="classic",
        paper_name="AlexNet",
        description="AlexNet (Krizhevsky et al. 2012), BN for LRN, stride-1 11x11 stem below 112 px",
        min_resolution=32,
        default_pooling="flatten",
        params={48: 46_777_095, 224: 46_777_095},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.classic:zfnet",
        family="classic",
        paper_name="ZFNet",
        description="ZFNet (Zeiler & Fergus 2014): 7x7/2 stem, strided conv2; stride 1 below 112 px",
        min_resolution=32,
        default_pooling="flatten",
        params={48: 46_756_359, 224: 58_290_695},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.classic:vggnet",
        family="vgg",
        paper_name="VGGNet",
        description="VGG for 48 px faces (Khaireddin & Chen 2021): 4 x [2 conv-BN, pool], FC 4096 x2",
        min_resolution=16,
        params={48: 23_602_375, 224: 23_602_375},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.vgglite:vgg_lite",
        family="vgg",
        paper_name="VGG-lite (ours)",
        description="Ours, after Khaireddin & Chen 2021 (arXiv:2105.03588): stem conv + pool, "
                    "3 x [2 conv-BN-ReLU, pool] at width 48/96/192, GAP, Dense 256; fast on CPUs",
        min_resolution=16,
        params={48: 707_823, 224: 707_823},
        test_resolutions=(32,),
        options={
            "width": Option(Annotated[int, Field(ge=8)], 48,
                            "channels of the first stage; stem half, later stages double"),
            "dropout": Option(_Dropout, 0.3, "dropout before the Dense 256 head"),
        },
    ),
    _model(
        "fer_keras.models.ensemble:ensemble",
        family="custom",
        paper_name="Ensemble",
        description="Self-designed: three BN CNNs, softmax outputs averaged",
        min_resolution=16,
        params={48: 852_501, 224: 852_501},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.esr:esr",
        family="ensemble",
        paper_name="ESR-9",
        description="Ensemble with Shared Representations (Siqueira et al., AAAI 2020): shared conv base, "
        "`branches` conv branches, loss = sum of branch losses, prediction = branch mean",
        min_resolution=32,
        params={48: 20_366_399, 224: 20_366_399},
        test_resolutions=(32,),
        trainer="fer_keras.train.esr:train_esr",
        portable=False,  # BranchEnsemble (summed branch losses) and BranchMean are fer_keras classes
        options={
            "branches": Option(_Positive, 9, "number of branches: 9 in the paper, 4 for lab data"),
            "schedule": Option(Literal[ESR_SCHEDULES], "joint",
                               "joint: all branches in the protocol's fit; progressive: the authors' one by one"),
            "padding": Option(Literal[ESR_PADDINGS], "auto",
                              "auto: the authors' unpadded convolutions from 64 px, padded below"),
        },
    ),
    _model(
        "fer_keras.models.googlenet:googlenet",
        family="inception",
        paper_name="GoogLeNet",
        description="GoogLeNet / Inception v1, no auxiliary heads, 3x3/1 stem below 112 px",
        min_resolution=32,
        params={48: 5_973_047, 224: 5_980_727},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.modular:modular",
        family="custom",
        paper_name="Modular",
        description="Self-designed: local (3x3) and global (7x7) conv sub-networks, concatenated",
        min_resolution=16,
        default_pooling="flatten",
        params={48: 2_961_287, 224: 51_982_215},
        test_resolutions=(16,),
    ),
    _model(
        "fer_keras.models.repvgg:repvgg",
        family="repvgg",
        paper_name="RepVGG",
        description="RepVGG-A0 (train-time branches; repvgg.reparameterize fuses them), protocol head",
        min_resolution=32,
        params={48: 8_247_143, 224: 8_247_143},
        test_resolutions=(32,),
        options={
            "deploy": Option(bool, False, "build the fused deploy form, one 3x3 conv per block"),
        },
    ),
    _model(
        "fer_keras.models.resmasking:resmasking_net",
        family="resnet",
        paper_name="Residual Masking Network",
        description="ResNet-34 with a U-Net Masking Block after each stage, output F + F*M "
        "(Pham et al., ICPR 2020); 3x3 stride-1 stem below 112 px",
        min_resolution=32,
        params={48: 137_866_567, 224: 137_874_247},
        test_resolutions=(32,),
        options={
            "dropout": Option(_Dropout, 0.4, "dropout before the softmax"),
            "mask_growth": Option(Literal[1, 2], 2,
                                  "2: the paper's masks, ~138M parameters; 1: constant channels, ~40M"),
            "stage_blocks": Option(tuple[_Positive, _Positive, _Positive, _Positive], (3, 4, 6, 3),
                                   "four residual block counts, one per stage; ResNet-34's by default"),
        },
    ),
    _model(
        "fer_keras.models.resnet:resnet18",
        family="resnet",
        paper_name="ResNet18",
        description=(
            "ResNet-18, basic blocks [2,2,2,2], 3x3 stride-1 stem at 48 px; the paper's best at 48x48"
        ),
        min_resolution=32,
        params={48: 11_710_919, 224: 11_718_599},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.se_resnet:se_resnet18",
        family="resnet",
        paper_name="SE-ResNet18",
        description="ResNet-18 with squeeze-and-excitation in every basic block (Huang et al., Sci. Rep. 2023)",
        min_resolution=32,
        params={48: 11_271_103, 224: 11_278_783},
        test_resolutions=(32,),
        options={
            "ratio": Option(_Positive, 16, "squeeze-and-excitation reduction ratio"),
        },
    ),
    _model(
        "fer_keras.models.sequential:sequential_simple",
        family="custom",
        paper_name="Sequential Simple",
        description="Small sequential CNN for edge devices: 4 convs, 3 max pools, Dense 512",
        min_resolution=16,
        default_pooling="flatten",
        params={48: 1_350_791, 224: 25_861_255},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.sequential:sequential_3conv",
        family="custom",
        paper_name="Sequential 3 Conv",
        description="Self-designed: [32,64,pool,drop] [128,128,pool] [512+BN,pool], GAP, Dense 1024",
        min_resolution=16,
        params={48: 1_365_703, 224: 1_365_703},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.sequential:sequential_4conv",
        family="custom",
        paper_name="Sequential 4 Conv",
        description="Sequential 3 Conv plus a [256,256,pool] block; 512 block adds Dropout 0.2",
        min_resolution=16,
        params={48: 2_840_775, 224: 2_840_775},
        test_resolutions=(32,),
    ),
    _model(
        "fer_keras.models.smmb:smmb",
        family="custom",
        paper_name="SMMB",
        description="Self-designed single model, multi-branch: conv 'face', attention 'emotion' branch",
        min_resolution=16,
        max_resolution=112,
        default_pooling="flatten",
        params={48: 6_030_983},
        test_resolutions=(16,),
        options={
            "num_heads": Option(_Positive, 4, "attention heads of the emotion branch"),
            "key_dim": Option(_Positive, 64, "key size of each attention head"),
        },
    ),
    _model(
        "fer_keras.models.tlf:tlf_resnet18",
        family="resnet",
        paper_name="TLF-ResNet18 + SVM",
        description="ResNet-18 embedding trained with the triplet loss, then a linear SVM (or LDA, softmax "
        "regression) on the embeddings, stored as a Dense layer (Haider et al., Sensors 2023)",
        min_resolution=32,
        params={48: 11_184_071, 224: 11_191_751},
        test_resolutions=(32,),
        trainer="fer_keras.train.triplet:train_triplet",
        checkpoint_monitor=TLF_CHECKPOINT,
        options={
            "head": Option(Literal[TLF_HEADS], "svm", "linear classifier fitted on the embeddings"),
            "margin": Option(Annotated[float, Field(gt=0)], 0.2, "triplet loss margin"),
            "mining": Option(Literal[TLF_MININGS], "batch_hard", "online triplet mining within a batch"),
        },
    ),
    _model(
        "fer_keras.models.vggface:senet50",
        family="resnet",
        paper_name="SENet50",
        description="SE-ResNet-50 in the VGGFace2 layout (keras-vggface SENET50), protocol head",
        min_resolution=32,
        pretrains=("scratch", "vggface"),
        params={48: 26_684_279, 224: 26_684_279},
        test_resolutions=(32,),
    ),
    # keras.applications: key, paper name, family, what differs, smallest input, parameters
    # (7 classes) at 48 and 224 px. The VGGFace ResNet-50 has bias-free convolutions:
    # 24,153,287 parameters, not the 24,179,847 below.
    _app("vgg16", "VGG16", "vgg", "keras.applications (scratch, ImageNet) or VGGFace v1, caffe normalisation",
         32, {48: 14_913_607, 224: 14_913_607}),
    _app("vgg19", "VGG19", "vgg", "keras.applications, caffe normalisation", 32,
         {48: 20_223_303, 224: 20_223_303}),
    _app("resnet50", "ResNet50", "resnet", "keras.applications (scratch, ImageNet) or VGGFace2, caffe normalisation",
         32, {48: 24_179_847, 224: 24_179_847}),
    _app("mobilenet", "MobileNet", "mobilenet", "v1, alpha 1.0 (keras.applications), [-1,1] input", 32,
         {48: 3_558_855, 224: 3_558_855}),
    _app("mobilenet_v2", "MobileNetV2", "mobilenet", "alpha 1.0 (keras.applications), [-1,1] input", 32,
         {48: 2_653_511, 224: 2_653_511}),
    _app("efficientnet_v2_b0", "EfficientNetV2-B0", "efficientnet", "keras.applications, normalises inside", 32,
         {48: 6_314_839, 224: 6_314_839}),
    _app("nasnet_mobile", "NASNetMobile", "nasnet", "NASNet-A Mobile (keras.applications), [-1,1] input", 32,
         {48: 4_607_899, 224: 4_607_899}),
    _app("densenet121", "DenseNet121", "densenet", "keras.applications, torch normalisation", 32,
         {48: 7_367_495, 224: 7_367_495}),
    _app("inception_v3", "InceptionV3", "inception", "keras.applications; needs >= 75 px; [-1,1] input", 75,
         {224: 22_394_919}),
    _app("xception", "Xception", "xception", "keras.applications; needs >= 71 px; [-1,1] input", 71,
         {224: 21_453_615}),
)
