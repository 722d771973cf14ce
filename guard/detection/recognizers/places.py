"""Country names, and IBANs however they are cased.

Countries are a closed list, so a gazetteer finds them where the NER model does not (on a line
of their own in an address block, in lower case). Names that are also common words or first
names ("Chad", "Jordan", "Turkey", "China") count only when capitalised.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from guard.detection.recognizers.base import (
    CONTEXT_ONLY_SCORE,
    Finding,
    GuardRecognizer,
    folded,
    prefix_tree,
    searches,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

COUNTRIES = """
Afghanistan|Albania|Algeria|Andorra|Angola|Antigua and Barbuda|Argentina|Armenia|Australia|
Austria|Azerbaijan|Bahamas|Bahrain|Bangladesh|Barbados|Belarus|Belgium|Belize|Benin|Bhutan|
Bolivia|Bosnia and Herzegovina|Botswana|Brazil|Brunei|Brunei Darussalam|Bulgaria|Burkina Faso|
Burundi|Cabo Verde|Cape Verde|Cambodia|Cameroon|Canada|Central African Republic|Chad|Chile|China|
Colombia|Comoros|Congo|Democratic Republic of the Congo|Republic of the Congo|Costa Rica|
Cote d'Ivoire|Côte d'Ivoire|Ivory Coast|Croatia|Cuba|Cyprus|Czechia|Czech Republic|Denmark|
Djibouti|Dominica|Dominican Republic|Ecuador|Egypt|El Salvador|Equatorial Guinea|Eritrea|Estonia|
Eswatini|Swaziland|Ethiopia|Fiji|Finland|France|Gabon|Gambia|Georgia|Germany|Ghana|Greece|Grenada|
Guatemala|Guinea|Guinea-Bissau|Guyana|Haiti|Honduras|Hungary|Iceland|India|Indonesia|Iran|Iraq|
Ireland|Israel|Italy|Jamaica|Japan|Jordan|Kazakhstan|Kenya|Kiribati|Kosovo|Kuwait|Kyrgyzstan|Laos|
Latvia|Lebanon|Lesotho|Liberia|Libya|Liechtenstein|Lithuania|Luxembourg|Madagascar|Malawi|
Malaysia|Maldives|Mali|Malta|Marshall Islands|Mauritania|Mauritius|Mexico|Micronesia|Moldova|
Monaco|Mongolia|Montenegro|Morocco|Mozambique|Myanmar|Burma|Namibia|Nauru|Nepal|Netherlands|
New Zealand|Nicaragua|Niger|Nigeria|North Korea|South Korea|Korea|North Macedonia|Macedonia|
Norway|Oman|Pakistan|Palau|Palestine|Panama|Papua New Guinea|Paraguay|Peru|Philippines|Poland|
Portugal|Qatar|Romania|Russia|Russian Federation|Rwanda|Saint Kitts and Nevis|Saint Lucia|
Saint Vincent and the Grenadines|Samoa|San Marino|Sao Tome and Principe|Saudi Arabia|Senegal|
Serbia|Seychelles|Sierra Leone|Singapore|Slovakia|Slovenia|Solomon Islands|Somalia|South Africa|
South Sudan|Spain|Sri Lanka|Sudan|Suriname|Sweden|Switzerland|Syria|Taiwan|Tajikistan|Tanzania|
Thailand|Timor-Leste|East Timor|Togo|Tonga|Trinidad and Tobago|Tunisia|Turkey|Türkiye|
Turkmenistan|Tuvalu|Uganda|Ukraine|United Arab Emirates|United Kingdom|Great Britain|England|
Scotland|Wales|Northern Ireland|United States|United States of America|Uruguay|Uzbekistan|
Vanuatu|Vatican City|Holy See|Venezuela|Vietnam|Viet Nam|Yemen|Zambia|Zimbabwe|Greenland|
Puerto Rico|Guam|Hong Kong|Macau|Macao|Faroe Islands|Bermuda|Gibraltar|Aruba|Curaçao|
Cayman Islands|British Virgin Islands|Isle of Man|Jersey|Guernsey|Western Sahara|Reunion|Réunion|
Martinique|Guadeloupe|French Guiana|French Polynesia|New Caledonia|Svalbard|Norfolk Island|
Christmas Island|Cook Islands|Niue|Tokelau|Pitcairn Islands|Falkland Islands|Saint Helena|
Anguilla|Montserrat|Turks and Caicos Islands|American Samoa|Northern Mariana Islands|
Wallis and Futuna|Mayotte|Saint Barthelemy|Saint Martin|Sint Maarten|Bonaire|Heard Island|
Bouvet Island|Antarctica|Slovak Republic|Kyrgyz Republic|Lao People's Democratic Republic|
Libyan Arab Jamahiriya|Syrian Arab Republic|Holland
"""
#: Country names that are also words or first names: matched only when capitalised.
_AMBIGUOUS = frozenset(
    """
    chad jordan georgia turkey china guinea niger mali chile togo panama jersey wales
    england oman cuba peru jamaica india holland reunion bonaire montserrat
    """.split()
)

_NAMES = sorted(
    (n.strip() for n in COUNTRIES.replace("\n", "").split("|") if n.strip()), key=len, reverse=True
)

_COUNTRY_ALTERNATION = "|".join(re.escape(n) for n in _NAMES)
#: Any country name, in any case (for the end of an address block).
COUNTRY = re.compile(rf"(?<![\w\-])(?:{_COUNTRY_ALTERNATION})(?![\w\-])", re.IGNORECASE)
#: A line that ends with a country name (and maybe a postcode): the last line of an address.
COUNTRY_AT_END = re.compile(
    rf"(?:^|[\s,])(?:{_COUNTRY_ALTERNATION})(?:\s+\d{{3,6}})?\s*[.,]?\s*$", re.IGNORECASE
)
#: "18 Zona Estação 75, Rogers, Barbados": a numbered street, a place, a country.
COMMA_ADDRESS = re.compile(
    rf"\b\d{{1,5}}[ \t][^\n,;:!?]{{3,60}},[ \t]*(?:[^\n,;:!?]{{2,40}},[ \t]*)?"
    rf"(?:{_COUNTRY_ALTERNATION})\b(?:[ \t]+\d{{3,6}}\b)?",
    re.IGNORECASE,
)


def _country_index() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """First word (lower case) -> the country names starting with it, longest first."""
    index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for name in _NAMES:
        words = tuple(_TOKEN.findall(name.lower()))
        index.setdefault(words[0], []).append((words, name))
    for entries in index.values():
        entries.sort(key=lambda entry: len(entry[0]), reverse=True)
    return index


_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_COUNTRY_INDEX = _country_index()
#: The first word of a country name, in folded text (see ``folded``): every token that
#: starts a name is found by one regex scan, and only those are looked at in Python (reading
#: every token of a long text in Python took 0.3 s a MB).
_COUNTRY_WORD = re.compile(prefix_tree(_COUNTRY_INDEX) + r"(?![^\W_])")


class CountryRecognizer(GuardRecognizer):
    """LOCATION: country and territory names; places introduced as where someone lives."""

    SCORE = 0.7

    def __init__(self) -> None:
        super().__init__(entity="LOCATION", name="GuardCountryRecognizer")

    def find(self, text: str) -> Iterable[Finding]:
        """Every country name (a word-by-word lookup), and places after "I live in"..."""
        from guard.detection.recognizers.address import place_spans  # noqa: PLC0415 - no cycle

        yield from place_spans(text)
        low = folded(text)
        resume = 0
        for candidate in _COUNTRY_WORD.finditer(low):
            start = candidate.start()
            if start < resume or not _token_start(text, start):
                continue
            first = _TOKEN.match(text, start)
            entries = _COUNTRY_INDEX.get(first.group().lower()) if first is not None else None
            if first is None or entries is None:
                continue
            window = [first]
            for words, name in entries:
                while len(window) < len(words):
                    following = _TOKEN.search(text, window[-1].end())
                    if following is None:
                        break
                    window.append(following)
                if len(window) < len(words) or any(
                    window[k].group().lower() != word for k, word in enumerate(words)
                ):
                    continue
                end = window[len(words) - 1].end()
                if name.lower() in _AMBIGUOUS and not text[start].isupper():
                    break
                yield start, end, self.SCORE
                resume = end
                break


def _token_start(text: str, position: int) -> bool:
    """Whether a token of ``_TOKEN`` starts at ``position`` (not inside "o'brien", "x-ray")."""
    if position == 0:
        return True
    previous = text[position - 1]
    if previous.isalnum():
        return False
    # a quote or hyphen between letters or digits joins them into one token
    return previous not in "'’-" or position == 1 or not text[position - 2].isalnum()


_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,4})?\b")


#: The shortest and longest IBANs of SWIFT's registry (Norway's 15, Saint Lucia's 32; 34 allowed).
_IBAN_LENGTHS = (15, 34)


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not _IBAN_LENGTHS[0] <= len(compact) <= _IBAN_LENGTHS[1]:
        return False
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


class AnyCaseIbanRecognizer(GuardRecognizer):
    """IBAN_CODE: check-digit-valid IBANs in any case ("gb48awjv..."), grouped or not."""

    SCORE = 1.0

    def __init__(self) -> None:
        super().__init__(
            entity="IBAN_CODE",
            name="GuardIbanRecognizer",
            context=("iban", "bank", "account"),
            # a country code and check digits; not a count of digits: some countries'
            # account parts are all letters ("LC55 HEMM 0001...", "CH86 3412 9BAB...")
            precheck=searches(r"[A-Za-z]{2}\d{2}"),
        )

    def find(self, text: str) -> Iterable[Finding]:
        """IBAN-shaped runs that pass the mod-97 check; those that fail it, for context only.

        A run of an IBAN's length whose check digits are wrong (a typo, a sample) is kept at
        ``CONTEXT_ONLY_SCORE``: after "IBAN" or "bank account" it is redacted, alone it is not.
        """
        for match in _IBAN.finditer(text):
            value = match.group()
            if _iban_ok(value):
                yield match.start(), match.end(), self.SCORE
            elif _IBAN_LENGTHS[0] <= len(value.replace(" ", "")) <= _IBAN_LENGTHS[1]:
                yield match.start(), match.end(), CONTEXT_ONLY_SCORE
