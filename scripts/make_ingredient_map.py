"""Make fhir_server/care/knowledge/ingredient_map.json: every distinct medication code of the shared Synthea
corpus (MedicationRequest/MedicationStatement.medicationCodeableConcept and Medication.code, RxNorm SCD, SBD
and packs) with the RxNorm ingredients (TTY=IN) it contains.

The ingredients of a code are read from its display with the curated tables below: ingredient names (and the
misspellings and brand names Synthea uses) to ingredient RxCUIs, and brand packs to their ingredients. An
RxCUI is given only where we are sure of it (most are in the CPIC drug table, docs/clinical-knowledge.md);
otherwise the ingredient is recorded by name with rxcui null. Codes whose display no table explains are
printed and left out, so a new corpus shows what to curate.

    .venv/bin/python scripts/make_ingredient_map.py [../shared/corpora/synthea-r4.tar.gz]
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
from pathlib import Path

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fhir_server" / "care" / "knowledge" / "ingredient_map.json"
CORPUS = ROOT.parent / "shared" / "corpora" / "synthea-r4.tar.gz"

# Ingredient name -> RxCUI (TTY=IN), or None where we could not confirm it.
INGREDIENTS: dict[str, str | None] = {
    "acetaminophen": "161", "albuterol": "435", "alendronate": "46041", "allopurinol": "519", "alteplase": "8410",
    "amiodarone": "703", "amlodipine": "17767", "amoxicillin": "723", "ampicillin": "733", "aspirin": "1191",
    "astemizole": None, "atomoxetine": "38400", "atorvastatin": "83367", "atropine": "1223", "captopril": "1998",
    "carbamazepine": "2002", "cefaclor": None, "cefuroxime": None, "cetirizine": "20610",
    "chlorpheniramine": "2400", "cisplatin": "2555", "clavulanate": "48203", "clonazepam": "2598",
    "clopidogrel": "32968", "colchicine": "2683", "cyanocobalamin": "11248", "cyclosporine": "3008",
    "dextromethorphan": "3289", "diazepam": "3322", "dienogest": None, "digoxin": "3407",
    "diphenhydramine": "3498", "docetaxel": "72962", "donepezil": "135447", "doxycycline": "3640",
    "doxylamine": "3642", "drospirenone": None, "epinephrine": "3992", "estradiol": "4083",
    "ethinyl estradiol": "4124", "etonogestrel": None, "etoposide": "4179", "ferrous sulfate": None,
    "fexofenadine": "87636", "fluoxetine": "4493", "fluticasone": "41126", "furosemide": "4603",
    "galantamine": "4637", "heparin": "5224", "hydrochlorothiazide": "5487", "hydrocodone": "5489",
    "hydrocortisone": "5492", "ibuprofen": "5640", "insulin isophane, human": None,
    "insulin regular, human": None, "isoflurane": "6026", "leucovorin": "6313", "leuprolide": "42375",
    "levonorgestrel": "6373", "levothyroxine": "10582", "loratadine": "28889", "medroxyprogesterone": "6691",
    "memantine": "6719", "meperidine": "6754", "mestranol": None, "metformin": "6809",
    "methotrexate": "6851", "methylphenidate": "6901", "metoprolol": "6918", "midazolam": "6960",
    "morphine": "7052", "naproxen": "7258", "nicotine": "7407", "nitrofurantoin": "7454",
    "nitroglycerin": "4917", "norelgestromin": None, "norethindrone": "7514", "norethynodrel": None,
    "norgestimate": None, "ondansetron": "26225", "oxaliplatin": "32592", "oxycodone": "7804",
    "paclitaxel": "56946", "penicillin v": "7984", "phenazopyridine": "8120", "piperacillin": "8339",
    "prednisone": "8640", "propofol": "8782", "remifentanil": "73032", "rocuronium": None,
    "salmeterol": "36117", "sertraline": "36437", "simvastatin": "36567", "sodium chloride": "9863",
    "tacrine": None, "tazobactam": "37617", "terfenadine": None, "verapamil": "11170", "warfarin": "11289",
}
# Other spellings in displays -> the ingredient name above.
SYNONYMS = {
    "alendronic acid": "alendronate", "simvistatin": "simvastatin", "lasix": "furosemide",
    "vitamin b 12": "cyanocobalamin", "insulin human, isophane": "insulin isophane, human",
    "regular insulin, human": "insulin regular, human", "penicillin v potassium": "penicillin v",
    "heparin sodium": "heparin",
}
# Brand packs and devices whose display names no ingredient -> their ingredients (from their labels).
PACKS = {
    "camila": ["norethindrone"], "errin": ["norethindrone"], "jolivette": ["norethindrone"],
    "estrostep fe": ["norethindrone", "ethinyl estradiol"],  # its iron tablets are not an active ingredient
    "kyleena": ["levonorgestrel"], "liletta": ["levonorgestrel"], "mirena": ["levonorgestrel"],
    "levora": ["levonorgestrel", "ethinyl estradiol"], "seasonique": ["levonorgestrel", "ethinyl estradiol"],
    "natazia": ["estradiol", "dienogest"], "norinyl": ["norethindrone", "mestranol"],
    "nuvaring": ["etonogestrel", "ethinyl estradiol"], "ortho tri-cyclen": ["norgestimate", "ethinyl estradiol"],
    "trinessa": ["norgestimate", "ethinyl estradiol"], "yaz": ["drospirenone", "ethinyl estradiol"],
}


def corpus_codes(path: Path) -> dict[str, str]:
    """Each distinct RxNorm code of the corpus's medications with its display."""
    codes: dict[str, str] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".json"):
                continue
            for entry in json.load(tar.extractfile(member)).get("entry", []):
                resource = entry["resource"]
                concept = resource.get("code") if resource["resourceType"] == "Medication" else \
                    resource.get("medicationCodeableConcept")
                for coding in (concept or {}).get("coding", []):
                    if coding.get("system") == RXNORM:
                        codes.setdefault(coding["code"], coding.get("display") or "")
    return codes


def ingredients_of(display: str) -> list[str]:
    """The ingredient names in a display: a pack's, else each name found, longest first, as whole words."""
    text = display.lower()
    for pack, names in PACKS.items():
        if text.startswith(pack):
            return names
    for other, name in SYNONYMS.items():
        text = text.replace(other, name)
    found: list[tuple[int, str]] = []
    for name in sorted(INGREDIENTS, key=len, reverse=True):
        match = re.search(rf"(?<![a-z]){re.escape(name)}(?![a-z])", text)
        if match:
            found.append((match.start(), name))
            text = text[:match.start()] + " " * len(name) + text[match.end():]  # "estradiol" in "ethinyl estradiol"
    return [name for _, name in sorted(found)]


def main(path: Path) -> int:
    codes = corpus_codes(path)
    mapped, unmapped = {}, []
    for code, display in sorted(codes.items(), key=lambda item: int(item[0])):
        names = ingredients_of(display)
        if names:
            mapped[code] = {"display": display,
                            "ingredients": [{"rxcui": INGREDIENTS[n], "name": n} for n in names]}
        else:
            unmapped.append(f"{code} {display}")
    OUT.write_text(json.dumps({
        "description": "RxNorm clinical and branded drug codes (SCD, SBD, packs) of the shared Synthea corpus "
                       "mapped to their RxNorm ingredients (TTY=IN); rxcui null where we record the ingredient "
                       "by name only. Made by scripts/make_ingredient_map.py.",
        "codes": mapped}, indent=1, ensure_ascii=False) + "\n")
    named = {i["name"] for entry in mapped.values() for i in entry["ingredients"]}
    print(f"{len(mapped)} of {len(codes)} codes mapped; {len(named)} ingredients, "
          f"{sum(1 for n in named if INGREDIENTS[n] is None)} by name only")
    for line in unmapped:
        print("unmapped:", line)
    return 1 if unmapped else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS))
