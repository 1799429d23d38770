"""The class lists a project can start from, with the field guide's short descriptions.

The descriptions are short notes written for this tool from the data sets' documentation
(Wagstaff et al. 2018; the HiRISE and MSL labeled data sets on Zenodo); admins edit them on
the project page.
"""

PRESETS = {
    # HiRISENet's orbital landmark classes (Wagstaff et al. 2018).
    "hirise": ["crater", "dark_dune", "bright_dune", "streak", "other", "edge"],
    # MSLNet's rover-part and scene classes, spelled as the MSL data set spells them
    # (Stanboli and Wagstaff, doi:10.5281/zenodo.1049137); its class list names "sun" too.
    "msl": [
        "apxs", "apxs cal target", "chemcam cal target", "chemin inlet open", "drill",
        "drill holes", "drt front", "drt side", "ground", "horizon", "inlet", "mahli",
        "mahli cal target", "mastcam", "mastcam cal target", "observation tray", "portion box",
        "portion tube", "portion tube opening", "rems uv sensor", "rover rear deck", "scoop",
        "sun", "turret", "wheel",
    ],
}
# Metadata column that groups correlated images, per preset.
PRESET_GROUP_COLUMNS = {"hirise": "source_id", "msl": "sol"}
# Presets whose images are in colour and whose models learn from it (HiRISE crops are grayscale).
PRESET_COLOR_INPUT = {"msl"}
# The field guide's first description of each preset class.
PRESET_DESCRIPTIONS = {
    "hirise": {
        "crater": "A roughly circular depression with a raised rim; fresh ones have sharp rims "
                  "and shadowed interiors, old ones are softened or filled.",
        "dark_dune": "Dark (basaltic) sand dunes: crescent or linear ridges darker than the "
                     "ground around them, often rippled.",
        "bright_dune": "Dunes or ridges brighter than their surroundings, such as transverse "
                       "aeolian ridges or frosted polar dunes with dark spots.",
        "streak": "Slope streaks: narrow dark (sometimes bright) streaks running down a slope "
                  "and fanning out downhill, usually on dusty terrain.",
        "other": "Any other landform or texture: none of the classes above.",
        "edge": "A crop at the edge of the observation: part of it is the black no-data "
                "margin.",
    },
    "msl": {
        "apxs": "The Alpha Particle X-ray Spectrometer's round sensor head on the arm's turret.",
        "apxs cal target": "The APXS calibration target: a small slab on the rover's shoulder.",
        "chemcam cal target": "ChemCam's calibration targets: a panel of small discs at the "
                              "back of the rover.",
        "chemin inlet open": "The CheMin sample inlet on the deck, with its cover open.",
        "drill": "The drill bit at the end of the arm's turret.",
        "drill holes": "Round holes the drill made in rock, often ringed with grey tailings.",
        "drt front": "The Dust Removal Tool (a wire brush on the turret), seen from the front.",
        "drt side": "The Dust Removal Tool, seen from the side.",
        "ground": "The ground near the rover: soil, pebbles and rocks, no horizon.",
        "horizon": "A view with the horizon: distant terrain and sky.",
        "inlet": "A sample inlet on the deck (CheMin or SAM) with its cover closed.",
        "mahli": "The MAHLI hand-lens camera on the arm's turret.",
        "mahli cal target": "MAHLI's calibration target: colour chips, a penny and bar patterns.",
        "mastcam": "The Mastcam cameras on the rover's mast.",
        "mastcam cal target": "Mastcam's calibration target on the deck: a small sundial with "
                              "colour chips.",
        "observation tray": "The white observation tray at the front of the rover, where "
                            "scooped samples are dropped.",
        "portion box": "The portion box of the CHIMRA sample-handling system.",
        "portion tube": "The portion tube of the sample-handling system.",
        "portion tube opening": "The opening of the portion tube, close up.",
        "rems uv sensor": "The REMS ultraviolet sensor on the deck: a small disc of photodiodes.",
        "rover rear deck": "The rover's rear deck: the power source, antennas and hardware.",
        "scoop": "The CHIMRA scoop on the turret.",
        "sun": "The Sun imaged through a filter: a bright disc on a dark background.",
        "turret": "The turret at the end of the robotic arm, with its tools.",
        "wheel": "One of the rover's aluminium wheels, with its treads.",
    },
}
