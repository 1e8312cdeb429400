"""ImageNet subsets as data: which ILSVRC2012 classes each holds, in label order, and how its images are
brought to one size. Plain data, no torch: the registry (`bench.data.DATASETS`) and the reader
(`bench.data.readers`) share this one definition.

MTT's six subsets come from GeorgeCazenavette/mtt-distillation utils.py `Config` (commit 50dccea), which
lists them as indices into ImageNet's 1000 classes in torchvision's order (the sorted WordNet ids); they
are converted here with that order. Label c is the c-th class of MTT's list, as MTT's `class_map` makes it
(so the lists keep MTT's order, not sorted order). ImageNet-10 is IDC's: the first 10 classes of
snu-mllab/Efficient-Dataset-Condensation misc/class100.txt (CMC's ImageNet-100 list), UDD's Table 8 subset.
"""

from __future__ import annotations

from dataclasses import dataclass

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# ILSVRC2012 has 732 to 1,300 training images per class: a lower bound on every subset's smallest class
# (the IPC limit `bench validate` checks; the exact counts are known only with the data).
MIN_CLASS_TRAIN = 732


@dataclass(frozen=True)
class Subset:
    """Classes of ILSVRC2012 as a data set, and how its reference code brings an image to size x size."""

    name: str
    wnids: tuple[str, ...]  # label order
    size: int
    # None: MTT's transforms.Resize((size, size)) on the image tensor (torchvision 0.12: bilinear, no
    # antialiasing), which stretches the whole image (its CenterCrop(size) after it changes nothing).
    # A number n: IDC's Resize(n) (shorter side to n) and CenterCrop(size) on the PIL image (bilinear,
    # antialiased as Pillow resizes).
    resize_shorter: int | None
    description: str


def _mtt(name: str, what: str, wnids: tuple[str, ...]) -> Subset:
    return Subset(name, wnids, 128, None,
                  f"{what}: MTT's subset of 10 ImageNet classes, 128x128 colour stretched from ILSVRC2012 "
                  f"(about 1,300 train / 50 val as test per class); MTT and NSD distill and evaluate it "
                  f"with ConvNetD5")


SUBSETS: dict[str, Subset] = {s.name: s for s in (
    # tench, English springer, cassette player, chain saw, church, French horn, garbage truck, gas pump,
    # golf ball, parachute
    _mtt("imagenette", "ImageNette (assorted objects)", (
        "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
        "n03394916", "n03417042", "n03425413", "n03445777", "n03888257")),
    # Australian terrier, Border terrier, Samoyed, beagle, Shih-Tzu, English foxhound, Rhodesian ridgeback,
    # dingo, golden retriever, Old English sheepdog
    _mtt("imagewoof", "ImageWoof (dog breeds)", (
        "n02096294", "n02093754", "n02111889", "n02088364", "n02086240",
        "n02089973", "n02087394", "n02115641", "n02099601", "n02105641")),
    # pineapple, banana, strawberry, orange, lemon, pomegranate, fig, bell pepper, cucumber, Granny Smith
    _mtt("imagefruit", "ImageFruit (fruits)", (
        "n07753275", "n07753592", "n07745940", "n07747607", "n07749582",
        "n07768694", "n07753113", "n07720875", "n07718472", "n07742313")),
    # tabby, tiger cat, Persian cat, Siamese cat, Egyptian cat, lion, tiger, jaguar, snow leopard, lynx
    _mtt("imagemeow", "ImageMeow (cats)", (
        "n02123045", "n02123159", "n02123394", "n02123597", "n02124075",
        "n02129165", "n02129604", "n02128925", "n02128757", "n02127052")),
    # peacock, flamingo, macaw, pelican, king penguin, bald eagle, toucan, ostrich, black swan,
    # sulphur-crested cockatoo
    _mtt("imagesquawk", "ImageSquawk (birds)", (
        "n01806143", "n02007558", "n01818515", "n02051845", "n02056570",
        "n01614925", "n01843383", "n01518878", "n01860187", "n01819313")),
    # bee, yellow lady's slipper, banana, lemon, corn, school bus, honeycomb, lion, black and gold garden
    # spider, goldfinch
    _mtt("imageyellow", "ImageYellow (yellow things)", (
        "n02206856", "n12057211", "n07753592", "n07749582", "n12144580",
        "n04146614", "n03530642", "n02129165", "n01773157", "n01531178")),
    # bonnet, green mamba, langur, Doberman, gyromitra, Saluki, vacuum, window screen, cocktail shaker,
    # garden spider
    Subset("imagenet10", (
        "n02869837", "n01749939", "n02488291", "n02107142", "n13037406",
        "n02091831", "n04517823", "n04589890", "n03062245", "n01773797"), 224, 224,
        "ImageNet-10: IDC's subset of 10 ImageNet classes (CMC's list), 224x224 colour, shorter side to 224 "
        "and centre crop as IDC's condense.py and test loader do (about 1,300 train / 50 val as test per "
        "class); IDC and UDD (Table 8) distill and evaluate it with ResNetAP-10"),
)}
