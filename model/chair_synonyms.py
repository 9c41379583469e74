"""COCO's 80 object categories and the words that name them, for CHAIR (model/chair.py).

Source: the synonym list of Rohrbach, Hendricks, Burns, Darrell and Saenko, "Object Hallucination in Image
Captioning" (EMNLP 2018), file ``data/synonyms.txt`` of their CHAIR code (github.com/LisaAnne/Hallucination): one
line per category, the category name first. There is no internet here, so this table was written from our
knowledge of that list, not copied from it: the categories are COCO's exactly, the synonyms are theirs as far as we
remember them and may differ from the file in a few rare words (their obvious typos, "solider", "phon",
"televison", are left out). Plurals are not listed: model/chair.py derives them. Two-word names are matched before
single words, so "hot dog" is never a dog and "teddy bear" never a bear; as in their code, "baby"/"adult" before an
animal names the animal, not a person, "passenger jet/train" a vehicle, and "toilet seat" a toilet, not a chair.
"""
from __future__ import annotations

SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": (
        "person", "girl", "boy", "man", "woman", "kid", "child", "chef", "baker", "people", "adult", "rider",
        "children", "baby", "worker", "passenger", "sister", "biker", "policeman", "cop", "officer", "lady",
        "cowboy", "bride", "groom", "male", "female", "guy", "traveler", "mother", "father", "gentleman",
        "pitcher", "player", "skier", "snowboarder", "skater", "skateboarder", "foreigner", "caller", "offender",
        "coworker", "trespasser", "patient", "politician", "soldier", "grandchild", "serviceman", "walker",
        "drinker", "doctor", "bicyclist", "thief", "buyer", "teenager", "student", "camper", "driver", "hunter",
        "shopper", "villager",
    ),
    "bicycle": ("bicycle", "bike", "unicycle", "minibike", "trike"),
    "car": ("car", "automobile", "van", "minivan", "sedan", "suv", "hatchback", "cab", "jeep", "coupe", "taxicab",
            "limo", "taxi"),
    "motorcycle": ("motorcycle", "scooter", "motor bike", "motor cycle", "motorbike", "moped"),
    "airplane": ("airplane", "jetliner", "plane", "air plane", "monoplane", "aircraft", "jet", "airbus", "biplane",
                 "seaplane"),
    "bus": ("bus", "minibus", "trolley"),
    "train": ("train", "locomotive", "tramway", "caboose"),
    "truck": ("truck", "pickup", "lorry", "hauler", "firetruck"),
    "boat": (
        "boat", "ship", "liner", "sailboat", "motorboat", "dinghy", "powerboat", "speedboat", "canoe", "skiff",
        "yacht", "kayak", "catamaran", "pontoon", "houseboat", "vessel", "rowboat", "trawler", "ferryboat",
        "watercraft", "tugboat", "schooner", "barge", "ferry", "sailboard", "paddleboat", "lifeboat", "freighter",
        "steamboat", "riverboat", "battleship", "steamship",
    ),
    "traffic light": ("traffic light", "street light", "traffic signal", "stop light", "streetlight", "stoplight"),
    "fire hydrant": ("fire hydrant", "hydrant"),
    "stop sign": ("stop sign",),
    "parking meter": ("parking meter", "meter"),
    "bench": ("bench", "pew"),
    "bird": (
        "bird", "ostrich", "owl", "seagull", "goose", "duck", "parakeet", "falcon", "robin", "pelican", "waterfowl",
        "heron", "hummingbird", "mallard", "finch", "pigeon", "sparrow", "seabird", "osprey", "blackbird", "fowl",
        "shorebird", "woodpecker", "egret", "chickadee", "quail", "bluebird", "kingfisher", "buzzard", "willet",
        "gull", "swan", "bluejay", "flamingo", "cormorant", "parrot", "loon", "gosling", "waterbird", "pheasant",
        "rooster", "sandpiper", "crow", "raven", "turkey", "oriole", "cowbird", "warbler", "magpie", "peacock",
        "cockatiel", "lorikeet", "puffin", "vulture", "condor", "macaw", "peafowl", "cockatoo", "songbird",
    ),
    "cat": ("cat", "kitten", "feline", "tabby"),
    "dog": (
        "dog", "puppy", "beagle", "pup", "chihuahua", "schnauzer", "dachshund", "rottweiler", "canine", "pitbull",
        "collie", "pug", "terrier", "poodle", "labrador", "doggie", "doberman", "mutt", "doggy", "spaniel",
        "bulldog", "sheepdog", "weimaraner", "corgi", "cocker", "greyhound", "retriever", "brindle", "hound",
        "whippet", "husky",
    ),
    "horse": ("horse", "colt", "pony", "racehorse", "stallion", "equine", "mare", "foal", "palomino", "mustang",
              "clydesdale", "bronc", "bronco"),
    "sheep": ("sheep", "lamb", "ram", "goat", "ewe"),
    "cow": ("cow", "cattle", "oxen", "ox", "calf", "holstein", "heifer", "buffalo", "bull", "zebu", "bison"),
    "elephant": ("elephant",),
    "bear": ("bear", "grizzly"),
    "zebra": ("zebra",),
    "giraffe": ("giraffe",),
    "backpack": ("backpack", "knapsack"),
    "umbrella": ("umbrella",),
    "handbag": ("handbag", "wallet", "purse", "briefcase"),
    "tie": ("tie", "bow", "bow tie"),
    "suitcase": ("suitcase", "suit case", "luggage"),
    "frisbee": ("frisbee",),
    "skis": ("skis", "ski"),
    "snowboard": ("snowboard",),
    "sports ball": ("sports ball", "ball"),
    "kite": ("kite",),
    "baseball bat": ("baseball bat",),
    "baseball glove": ("baseball glove",),
    "skateboard": ("skateboard",),
    "surfboard": ("surfboard", "longboard", "skimboard", "shortboard", "wakeboard"),
    "tennis racket": ("tennis racket", "racket"),
    "bottle": ("bottle",),
    "wine glass": ("wine glass",),
    "cup": ("cup",),
    "fork": ("fork",),
    "knife": ("knife", "pocketknife"),
    "spoon": ("spoon",),
    "bowl": ("bowl", "container"),
    "banana": ("banana",),
    "apple": ("apple",),
    "sandwich": ("sandwich", "burger", "sub", "cheeseburger", "hamburger"),
    "orange": ("orange",),
    "broccoli": ("broccoli",),
    "carrot": ("carrot",),
    "hot dog": ("hot dog",),
    "pizza": ("pizza",),
    "donut": ("donut", "doughnut", "bagel"),
    "cake": ("cake", "cheesecake", "cupcake", "shortcake", "coffeecake", "pancake"),
    "chair": ("chair", "seat", "stool"),
    "couch": ("couch", "sofa", "recliner", "futon", "loveseat", "settee", "chesterfield"),
    "potted plant": ("potted plant", "houseplant"),
    "bed": ("bed",),
    "dining table": ("dining table", "table", "desk"),
    "toilet": ("toilet", "urinal", "commode", "lavatory", "potty"),
    "tv": ("tv", "monitor", "television"),
    "laptop": ("laptop", "computer", "notebook", "netbook", "lenovo", "macbook", "laptop computer"),
    "mouse": ("mouse",),
    "remote": ("remote",),
    "keyboard": ("keyboard",),
    "cell phone": ("cell phone", "mobile phone", "phone", "cellphone", "telephone", "smartphone", "iphone"),
    "microwave": ("microwave",),
    "oven": ("oven", "stovetop", "stove", "stove top oven"),
    "toaster": ("toaster",),
    "sink": ("sink",),
    "refrigerator": ("refrigerator", "fridge", "freezer"),
    "book": ("book", "novel", "minibook"),
    "clock": ("clock",),
    "vase": ("vase",),
    "scissors": ("scissors",),
    "teddy bear": ("teddy bear", "teddybear"),
    "hair drier": ("hair drier", "hairdryer", "hair dryer", "blow dryer", "blowdryer", "blow drier", "dryer"),
    "toothbrush": ("toothbrush",),
}

# Phrases whose words would otherwise name the wrong category (Rohrbach et al.'s code has the same rules):
# "baby elephant" is an elephant, not a person; "passenger train" a train; "toilet seat" a toilet, not a chair.
ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
PHRASES: dict[str, str | None] = {
    **{f"{age} {animal}": (animal if animal in SYNONYMS else None)
       for age in ("baby", "adult") for animal in ANIMALS},
    "passenger jet": "airplane", "passenger train": "train", "passenger plane": "airplane",
    "toilet seat": "toilet",
}

# Plurals the English rules in model/chair.py would get wrong.
IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "gentleman": "gentlemen", "policeman": "policemen", "serviceman": "servicemen",
    "child": "children", "grandchild": "grandchildren", "person": "persons", "mouse": "mice", "ox": "oxen",
    "goose": "geese", "knife": "knives", "pocketknife": "pocketknives", "calf": "calves", "sheep": "sheep",
    "bison": "bison", "buffalo": "buffaloes", "cattle": "cattle", "people": "peoples", "skis": "skis",
    "scissors": "scissors", "broccoli": "broccoli", "luggage": "luggage", "fowl": "fowl", "bus": "buses",
    "minibus": "minibuses", "tv": "tvs",
}
