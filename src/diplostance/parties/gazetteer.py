"""The gazetteer: French names of states, capitals used as metonyms ("Pékin", "Moscou"),
nationality adjectives ("chinois", "sénégalaise") and international organisations, each to the
code of ``data/GUIDELINES.md`` section 7 (ISO 3166-1 alpha-3 for states, short codes for
organisations, ``NSA:<NAME>`` for non-state armed groups).

The table below is written by hand for the names readouts use ("la Russie", not pycountry's
"Russie, Fédération de"); pycountry's French translations of ISO 3166 add every other state's
official French name, so a state the table forgot is still found under its ISO name.
:func:`find_mentions` returns every mention of a sentence with its character offsets.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# code | names (with their article, ';'-separated) | masculine singular adjectives | capitals
# (and other metonyms).  An article in a name is optional in the text ("la Chine", "Chine").
STATES = """
AFG|l'Afghanistan|afghan|Kaboul
ZAF|l'Afrique du Sud|sud-africain|Pretoria
DZA|l'Algérie|algérien|Alger
DEU|l'Allemagne|allemand|Berlin
AGO|l'Angola|angolais|Luanda
SAU|l'Arabie saoudite|saoudien|Riyad
ARG|l'Argentine|argentin|Buenos Aires
ARM|l'Arménie|arménien|Erevan
AUS|l'Australie|australien|Canberra
AUT|l'Autriche|autrichien|Vienne
AZE|l'Azerbaïdjan|azerbaïdjanais;azéri|Bakou
BHR|Bahreïn|bahreïni|Manama
BGD|le Bangladesh|bangladais|Dacca;Dhaka
BRB|la Barbade|barbadien|Bridgetown
BEL|la Belgique|belge|
BEN|le Bénin|béninois|Cotonou;Porto-Novo
BTN|le Bhoutan|bhoutanais|Thimphou
BLR|la Biélorussie;le Bélarus;la Bélarus|biélorusse;bélarusse|Minsk
MMR|la Birmanie;le Myanmar|birman|Naypyidaw;Naypyitaw
BOL|la Bolivie|bolivien|La Paz;Sucre
BWA|le Botswana|botswanais|Gaborone
BRA|le Brésil|brésilien|Brasilia;Brasília
BGR|la Bulgarie|bulgare|Sofia
BFA|le Burkina Faso;le Burkina|burkinabè;burkinabé|Ouagadougou
BDI|le Burundi|burundais|Gitega;Bujumbura
KHM|le Cambodge|cambodgien;khmer|Phnom Penh
CMR|le Cameroun|camerounais|Yaoundé
CAN|le Canada|canadien|Ottawa
CPV|le Cap-Vert;Cabo Verde|cap-verdien|Praia
CAF|la République centrafricaine;la Centrafrique|centrafricain|Bangui
CHL|le Chili|chilien|Santiago
CHN|la Chine;la République populaire de Chine|chinois|Pékin;Beijing
CYP|Chypre|chypriote|Nicosie
COL|la Colombie|colombien|Bogota;Bogotá
COG|le Congo;la République du Congo;le Congo-Brazzaville|congolais|Brazzaville
COD|la République démocratique du Congo;la RDC;la RD Congo;le Congo-Kinshasa||Kinshasa
PRK|la Corée du Nord;la République populaire démocratique de Corée;la RPDC|nord-coréen|Pyongyang
KOR|la Corée du Sud;la République de Corée|sud-coréen|Séoul
CRI|le Costa Rica|costaricien;costaricain|San José
CIV|la Côte d'Ivoire|ivoirien|Abidjan;Yamoussoukro
HRV|la Croatie|croate|Zagreb
CUB|Cuba|cubain|La Havane
DNK|le Danemark|danois|Copenhague
DJI|Djibouti|djiboutien|
DOM|la République dominicaine|dominicain|Saint-Domingue;Santo Domingo
EGY|l'Égypte|égyptien|Le Caire
ARE|les Émirats arabes unis;les Émirats;les EAU|émirien;émirati|Abou Dhabi;Abu Dhabi
ECU|l'Équateur|équatorien|Quito
ERI|l'Érythrée|érythréen|Asmara
ESP|l'Espagne|espagnol|Madrid
EST|l'Estonie|estonien|Tallinn
USA|les États-Unis;les États-Unis d'Amérique;les USA|américain;états-unien|Washington;la Maison-Blanche;la Maison Blanche
ETH|l'Éthiopie|éthiopien|Addis-Abeba
FJI|les Fidji;Fidji|fidjien|Suva
FIN|la Finlande|finlandais|Helsinki
FRA|la France|français|Paris;l'Élysée;le Quai d'Orsay
GAB|le Gabon|gabonais|Libreville
GMB|la Gambie|gambien|Banjul
GEO|la Géorgie|géorgien|Tbilissi
GHA|le Ghana|ghanéen|Accra
GRC|la Grèce|grec|Athènes
GTM|le Guatemala|guatémaltèque|Guatemala
GIN|la Guinée;la Guinée-Conakry|guinéen|Conakry
GNQ|la Guinée équatoriale|équato-guinéen|Malabo
GNB|la Guinée-Bissau|bissau-guinéen|Bissau
GUY|le Guyana|guyanien|Georgetown
HTI|Haïti|haïtien|Port-au-Prince
HND|le Honduras|hondurien|Tegucigalpa
HUN|la Hongrie|hongrois|Budapest
IND|l'Inde|indien|New Delhi
IDN|l'Indonésie|indonésien|Jakarta
IRQ|l'Irak;l'Iraq|irakien;iraquien|Bagdad
IRN|l'Iran|iranien|Téhéran
IRL|l'Irlande|irlandais|Dublin
ISL|l'Islande|islandais|Reykjavik
ISR|Israël;l'État d'Israël|israélien|Tel-Aviv;Tel Aviv
ITA|l'Italie|italien|Rome
JAM|la Jamaïque|jamaïcain|Kingston
JPN|le Japon|japonais|Tokyo
JOR|la Jordanie|jordanien|Amman
KAZ|le Kazakhstan|kazakh;kazakhstanais|Astana
KEN|le Kenya|kényan;kenyan|Nairobi
KGZ|le Kirghizistan;le Kirghizstan|kirghize;kirghiz|Bichkek
XKX|le Kosovo|kosovar|Pristina
KWT|le Koweït|koweïtien|
LAO|le Laos|laotien|Vientiane
LVA|la Lettonie|letton|Riga
LBN|le Liban|libanais|Beyrouth
LBR|le Liberia;le Libéria|libérien|Monrovia
LBY|la Libye|libyen|Tripoli
LIE|le Liechtenstein|liechtensteinois|Vaduz
LTU|la Lituanie|lituanien|Vilnius
LUX|le Luxembourg|luxembourgeois|
MDG|Madagascar|malgache|Antananarivo;Tananarive
MYS|la Malaisie|malaisien|Kuala Lumpur
MWI|le Malawi|malawite;malawien|Lilongwe
MDV|les Maldives|maldivien|Malé
MLI|le Mali|malien|Bamako
MAR|le Maroc;le Royaume du Maroc|marocain|Rabat
MUS|Maurice;l'île Maurice|mauricien|Port-Louis
MRT|la Mauritanie|mauritanien|Nouakchott
MEX|le Mexique|mexicain|Mexico
MDA|la Moldavie;la Moldova|moldave|Chisinau;Chișinău
MNG|la Mongolie|mongol|Oulan-Bator
MOZ|le Mozambique|mozambicain|Maputo
NAM|la Namibie|namibien|Windhoek
NPL|le Népal|népalais|Katmandou
NIC|le Nicaragua|nicaraguayen|Managua
NER|le Niger|nigérien|Niamey
NGA|le Nigeria;le Nigéria|nigérian|Abuja
NOR|la Norvège|norvégien|Oslo
NZL|la Nouvelle-Zélande|néo-zélandais|Wellington
OMN|Oman;le sultanat d'Oman|omanais|Mascate
UGA|l'Ouganda|ougandais|Kampala
UZB|l'Ouzbékistan|ouzbek;ouzbèke|Tachkent
PAK|le Pakistan|pakistanais|Islamabad
PSE|la Palestine;l'État de Palestine;l'Autorité palestinienne|palestinien|Ramallah
PAN|le Panama|panaméen|Panama
PRY|le Paraguay|paraguayen|Asuncion;Asunción
NLD|les Pays-Bas|néerlandais|La Haye;Amsterdam
PER|le Pérou|péruvien|Lima
PHL|les Philippines|philippin|Manille
POL|la Pologne|polonais|Varsovie
PRT|le Portugal|portugais|Lisbonne
QAT|le Qatar|qatari;qatarien|Doha
ROU|la Roumanie|roumain|Bucarest
GBR|le Royaume-Uni;la Grande-Bretagne|britannique|Londres;Downing Street
RUS|la Russie;la Fédération de Russie|russe|Moscou;le Kremlin
RWA|le Rwanda|rwandais|Kigali
WSM|les Samoa;Samoa|samoan|Apia
STP|Sao Tomé-et-Principe;São Tomé-et-Príncipe|santoméen|
SEN|le Sénégal|sénégalais|Dakar
SRB|la Serbie|serbe|Belgrade
SLE|la Sierra Leone|sierra-léonais|Freetown
SGP|Singapour|singapourien|
SVK|la Slovaquie|slovaque|Bratislava
SVN|la Slovénie|slovène|Ljubljana
SOM|la Somalie|somalien|Mogadiscio
SDN|le Soudan|soudanais|Khartoum;Port-Soudan
SSD|le Soudan du Sud|sud-soudanais|Djouba;Juba
LKA|le Sri Lanka|sri-lankais|Colombo
SWE|la Suède|suédois|Stockholm
CHE|la Suisse;la Confédération|suisse|Berne
SYR|la Syrie|syrien|Damas
TJK|le Tadjikistan|tadjik|Douchanbé
TWN|Taïwan;Taiwan|taïwanais|Taipei
TZA|la Tanzanie|tanzanien|Dodoma;Dar es Salaam
TCD|le Tchad|tchadien|N'Djamena
CZE|la Tchéquie;la République tchèque|tchèque|Prague
THA|la Thaïlande|thaïlandais|Bangkok
TLS|le Timor-Leste;le Timor oriental|timorais|Dili
TGO|le Togo|togolais|Lomé
TON|les Tonga;Tonga|tongien|Nuku'alofa
TUN|la Tunisie|tunisien|Tunis
TKM|le Turkménistan|turkmène|Achgabat
TUR|la Turquie;la Türkiye|turc|Ankara
TUV|les Tuvalu;Tuvalu|tuvaluan|Funafuti
UKR|l'Ukraine|ukrainien|Kiev;Kyiv
URY|l'Uruguay|uruguayen|Montevideo
VUT|le Vanuatu|vanuatais|Port-Vila
VEN|le Venezuela;le Vénézuéla|vénézuélien|Caracas
VNM|le Vietnam;le Viet Nam;le Viêt Nam|vietnamien|Hanoï;Hanoi
YEM|le Yémen|yéménite|Sanaa
ZMB|la Zambie|zambien|Lusaka
ZWE|le Zimbabwe|zimbabwéen|Harare
SLB|les Îles Salomon|salomonais|Honiara
VAT|le Saint-Siège;le Vatican|vatican|
"""

# code | names (with their article; acronyms as written) | adjectives
ORGANISATIONS = """
UN|l'ONU;les Nations unies;les Nations Unies;l'Organisation des Nations unies;le Conseil de sécurité;l'Assemblée générale;le Secrétaire général de l'ONU;le secrétaire général de l'ONU;le Secrétaire général des Nations unies;le HCR;l'OMS;l'UNICEF;le PAM;l'OCHA;le HCDH;l'UNRWA;la FINUL;la MINUSCA;la MONUSCO;la MINUSMA;le PNUD;la FAO;l'UNESCO;le FIDA;l'OMM;la CIJ;la Cour internationale de justice;l'Organisation mondiale de la santé|onusien
EU|l'Union européenne;l'UE;la Commission européenne;le Conseil européen;le Parlement européen;le haut représentant de l'UE;le Haut représentant de l'Union;les Vingt-Sept;les 27;Bruxelles|
AU|l'Union africaine;l'UA;la Commission de l'Union africaine;la Commission de l'UA;Africa CDC;le Conseil de paix et de sécurité|
ASEAN|l'ASEAN;l'ANASE|
NATO|l'OTAN;l'Alliance atlantique|
SCO|l'OCS;l'Organisation de coopération de Shanghai|
BRICS|les BRICS|
G7|le G7|
G20|le G20|
OIF|l'OIF;la Francophonie;l'Organisation internationale de la Francophonie|
ECOWAS|la CEDEAO;la Communauté économique des États de l'Afrique de l'Ouest|
ECCAS|la CEEAC|
SADC|la SADC|
IGAD|l'IGAD|
EAC|l'EAC;la Communauté d'Afrique de l'Est|
AL|la Ligue arabe;la Ligue des États arabes|
GCC|le CCG;le Conseil de coopération du Golfe|
OIC|l'OCI;l'Organisation de la coopération islamique|
OAS|l'OEA;l'Organisation des États américains|
CELAC|la CELAC|
MERCOSUR|le Mercosur;le MERCOSUR|
CARICOM|la CARICOM;la Caricom|
OSCE|l'OSCE|
CSTO|l'OTSC|
WTO|l'OMC;l'Organisation mondiale du commerce|
IMF|le FMI;le Fonds monétaire international|
WB|la Banque mondiale|
ICC|la CPI;la Cour pénale internationale|
IAEA|l'AIEA;l'Agence internationale de l'énergie atomique|
COMMONWEALTH|le Commonwealth|
PIF|le Forum des îles du Pacifique|
AES|l'AES;l'Alliance des États du Sahel|
UEMOA|l'UEMOA|
CEMAC|la CEMAC|
BCEAO|la BCEAO|
CIRGL|la CIRGL|
CPLP|la CPLP|
SICA|le SICA|
EFTA|l'AELE|
AFDB|la Banque africaine de développement;la BAD|
ICRC|le CICR;le Comité international de la Croix-Rouge|
NSA:M23|le M23;l'AFC/M23|
NSA:HAMAS|le Hamas|
NSA:HEZBOLLAH|le Hezbollah|
NSA:HOUTHIS|les Houthis;les houthis;Ansarullah;Ansar Allah|houthi
NSA:RSF|les Forces de soutien rapide;les FSR|
NSA:JNIM|le JNIM|
NSA:AL-SHABAAB|les Shebab;les shebab;al-Shabaab;les Chabab|
NSA:ISIS|Daech;l'État islamique;l'EI|
NSA:BOKO-HARAM|Boko Haram|
NSA:TALIBAN|les talibans;les Talibans|
"""

#: Words before a nationality adjective that make it name a state's agent: "le président
#: chinois", "la partie russe", "les autorités maliennes" (the span is the whole phrase).
TITLES = (r"(?:vice-)?président(?:e)?|premier ministre|première ministre|(?:vice-)?ministre|chef de l'état|"
          r"chef de la diplomatie|chef du gouvernement|dirigeant(?:e)?s?|homologue|partie|gouvernement|"
          r"porte-parole|diplomatie|diplomate|ambassade(?:ur|rice)?|délégation|autorités|état|pays|armée|"
          r"forces armées|ministère|présidence|souverain|roi|reine|émir|premier|prince héritier|"
          r"envoyé(?:e)? spécial(?:e)?|envoyé(?:e)?|émissaire|hôte|dirigeants|président de la république|"
          r"secrétaire d'état|chancelier|chancelière|côté|peuple|nation|frères|amis|partenaires")

_ARTICLE = re.compile(r"^(le |la |les |l'|l’)", re.I)


@dataclass(frozen=True)
class Entry:
    code: str
    kind: str  # name, capital, adjective, organisation, nsa


def _fold(text: str) -> str:
    return text.replace("’", "'")


def _adjective_forms(adj: str) -> list[str]:
    if " " in adj:  # "congolais de la RDC": no inflection
        return [adj]
    if adj.endswith(("ais", "ois")) or adj.endswith("s"):
        return [adj, adj + "e", adj + "es"]
    if adj.endswith("e"):
        return [adj, adj + "s"]
    if adj.endswith(("è", "é")):  # burkinabè
        return [adj, adj + "s", adj + "e", adj + "es"]
    if adj.endswith(("ien", "éen", "en")):
        return [adj, adj + "ne", adj + "s", adj + "nes"]
    if adj.endswith("c"):  # grec, turc
        stem = adj + "q" if adj == "grec" else adj[:-1] + "q"
        return [adj, adj + "s", stem + "ue", stem + "ues"]
    if adj.endswith("i"):  # qatari, émirati, houthi
        return [adj, adj + "s", adj + "e", adj + "es"]
    return [adj, adj + "e", adj + "s", adj + "es"]


@lru_cache(maxsize=1)
def table() -> dict[str, Entry]:
    """Every surface form (folded: typographic apostrophes made straight) to its entry; names are
    matched with their capitals as written, adjectives in lower case."""
    forms: dict[str, Entry] = {}

    def add(form: str, entry: Entry) -> None:
        form = _fold(form.strip())
        if form and form not in forms:
            forms[form] = entry

    for line in STATES.strip().splitlines():
        code, names, adjectives, capitals = line.split("|")
        for name in names.split(";"):
            add(_ARTICLE.sub("", name), Entry(code, "name"))
        for adj in filter(None, adjectives.split(";")):
            for form in _adjective_forms(adj):
                add(form, Entry(code, "adjective"))
        for capital in filter(None, capitals.split(";")):
            add(_ARTICLE.sub("", capital) if capital.startswith(("la Maison", "le Kremlin", "l'Élysée", "le Quai"))
                else capital, Entry(code, "capital"))
    for line in ORGANISATIONS.strip().splitlines():
        code, names, adjectives = line.split("|")
        kind = "nsa" if code.startswith("NSA:") else "organisation"
        for name in names.split(";"):
            add(_ARTICLE.sub("", name), Entry(code, kind))
        for adj in filter(None, adjectives.split(";")):
            for form in _adjective_forms(adj):
                add(form, Entry(code, "adjective"))
    for code, name in _pycountry_names():
        add(name, Entry(code, "name"))
    # the nationality adjective of Congo-Kinshasa is "congolais" too: the plain adjective is COG
    # only when the document says nothing of the RDC (resolved in the extractor)
    return forms


def _pycountry_names() -> list[tuple[str, str]]:
    """pycountry's French names of the ISO 3166 states whose name has no comma ("Bosnie-
    Herzégovine", "Saint-Marin"); the inverted official forms ("Corée, République de") are
    never written so in prose."""
    try:
        import gettext

        import pycountry
    except ImportError:  # the table alone
        return []
    french = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["fr"], fallback=True)
    names = []
    for country in pycountry.countries:
        for attr in ("name", "common_name"):
            name = getattr(country, attr, None)
            if not name:
                continue
            fr = french.gettext(name)
            if "," not in fr and "(" not in fr and len(fr) > 3:
                names.append((country.alpha_3, fr))
    return names


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    forms = sorted(table(), key=len, reverse=True)
    alternation = "|".join(re.escape(f) for f in forms)
    # words: not inside a longer word; case-sensitive (capitalised names, lower-case adjectives),
    # plus an upper-case form of names for datelines and headlines ("PÉKIN, 3 mars")
    return re.compile(rf"(?<![\w-])(?:{alternation})(?![\w-])")


@lru_cache(maxsize=1)
def _upper() -> dict[str, Entry]:
    return {f.upper(): e for f, e in table().items() if e.kind in ("name", "capital") and f[:1].isupper()}


@lru_cache(maxsize=1)
def _upper_pattern() -> re.Pattern:
    forms = sorted(_upper(), key=len, reverse=True)
    return re.compile(rf"(?<![\w-])(?:{'|'.join(re.escape(f) for f in forms)})(?![\w-])")


@dataclass
class Mention:
    """A party named in the text: its code, kind, and the span (offsets into the text given to
    :func:`find_mentions`, shifted by its ``offset``)."""

    code: str
    kind: str
    text: str
    start: int
    end: int
    #: the gazetteer form matched inside the span (the span may add an article or a title)
    core_start: int = 0
    core_end: int = 0


_TITLE_BEFORE = re.compile(rf"(?:\b(?:[Ll]es?|[Ll]a|[Ll]'|[Ll]’|[Ss]on|[Ss]a|[Ss]es|[Uu]ne?|[Dd]es|[Dd]u|[Aa]ux?)\s*)?"
                           rf"(?:{TITLES})(?:\s+(?:des|du|de la|de l'|aux)\s+[A-ZÉ][\w'’-]+(?:\s+[A-ZÉ][\w'’-]+)?)?\s+$",
                           re.I)
_ARTICLE_BEFORE = re.compile(r"(?:\b(?:[Ll]es|[Ll]e|[Ll]a)\s+|\b[Ll]['’])$")


def find_mentions(text: str, offset: int = 0) -> list[Mention]:
    """Every party named in ``text``, left to right, spans not overlapping.  An adjective after
    a title takes the title in its span ("Le président chinois"); a name takes its article
    ("la Chine")."""
    folded = _fold(text)
    found: list[Mention] = []
    taken = [False] * len(text)
    for pattern, forms in ((_pattern(), table()), (_upper_pattern(), _upper())):
        for m in pattern.finditer(folded):
            if any(taken[m.start():m.end()]):
                continue
            entry = forms[m.group(0)]
            start, end = m.start(), m.end()
            if entry.kind == "adjective":
                title = _TITLE_BEFORE.search(folded[max(0, start - 80):start])
                if title:
                    start = start - (len(folded[max(0, start - 80):start]) - title.start())
                    # not "son homologue chinois" but "homologue chinois"? keep the determiner: shortest
                    # phrase that names the party is the title with its nationality
            else:
                article = _ARTICLE_BEFORE.search(folded[max(0, start - 5):start])
                if article and entry.kind in ("name", "organisation", "nsa", "capital"):
                    start -= len(article.group(0))
            for i in range(start, end):
                taken[i] = True
            found.append(Mention(entry.code, entry.kind, text[start:end], start + offset, end + offset,
                                 m.start() + offset, m.end() + offset))
    found.sort(key=lambda x: x.start)
    return found


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
