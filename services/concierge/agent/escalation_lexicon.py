"""Word lists and phrase patterns of the escalation rules, in English, German, French and Spanish.

Data only, read by `concierge.agent.escalation`. Every word and pattern is written in normalised form:
lower case, accents removed (`möchte` → `mochte`, `à` → `a`, `ß` → `ss`), straight apostrophes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Language = Literal["en", "de", "fr", "es"]
LANGUAGES: Final[tuple[Language, ...]] = ("en", "de", "fr", "es")

# Pattern edges: a phrase starts and ends at a word edge; a hyphen joins words ("human-like") and an
# apostrophe ends a phrase only at its start ("l'agent", but not "someone's").
S: Final = r"(?<![\w-])"
E: Final = r"(?![\w'-])"

# A clause ends at punctuation or at a contrast word: what comes before it does not negate what follows
# ("I don't want to wait, get me a human"; "not the bot but a person").
CLAUSE_BREAK: Final = r"[.,;:!?¡¿…]|\b(?:but|aber|sondern|mais|pero|sino|instead|plutot)\b"
# A negation in a "why" question is a complaint, not a refusal ("why can I not talk to a human?").
WHY: Final = r"\b(?:why|how come|warum|wieso|weshalb|weswegen|pourquoi|por que|porque)\b"


@dataclass(frozen=True)
class RequestPatterns:
    """How one language asks for a human, and the context that turns a match into something else.

    `requests` ask for a human wherever they stand, unless negated or asked about the assistant's identity.
    `bare` noun phrases ("live agent") ask only when no definite determiner, past tense or report
    ("… told me") shows they are about someone already met. `refusals` reject the bot ("I don't want to
    talk to a bot") and so carry their own negation. The guards are regexes over normalised text:
    `negation` over the last words before a match, `identity`, `definite` at the end of the text before
    it, `past` anywhere in the clause before it, `report` at the start of the text after it.
    """

    requests: tuple[str, ...]
    bare: tuple[str, ...]
    refusals: tuple[str, ...]
    negation: str
    identity: str
    definite: str
    past: str
    report: str


# --- English ------------------------------------------------------------------------------

_EN_DET = (
    r"(?:(?:a|an|the|some|one|any|your|one of your|one of the|a member of your|a member of the"
    r"|someone from your|someone on your|somebody from your) )"
)
_EN_ADJ = r"(?:(?:real|actual|live|human|proper|genuine|competent|living|breathing|flesh and blood) )"
_EN_STRONG = (
    r"(?:human beings?|humans?|human (?:help|support|assistance|contact)|agents?|representatives?|reps?"
    r"|operators?|supervisors?|managers?|staff(?: members?)?|employees?"
    r"|(?:customer|tech(?:nical)?) (?:service|support|care)"
    r"(?: (?:team|desk|department|agents?|reps?|representatives?|person|people|staff))?"
    r"|support (?:team|staff|agents?|desk)|help ?desk"
    r"|(?:someone|somebody|anyone|anybody) (?:real|human|actual)"
    r"|(?:someone|somebody) (?:from|at|on|in) (?:your|the) (?:team|company|staff|support|customer service|office))"
)
# "person" or "support" alone is a request only after talk to / connect me with, or as "a real person"
_EN_WEAK = r"(?:persons?|people|someone|somebody|anyone|anybody|support)"
_EN_NOUN = rf"(?:{_EN_STRONG}|{_EN_WEAK})"
# "I need the manager app" names a thing, not a person
_EN_THING = (
    r"(?! (?:app|application|mode|setting|settings|feature|id|number|code|tool|software|icon|button|menu|page"
    r"|screen|portal|login|account)\b)"
)
_EN_WANT = (
    r"(?:want|wanna|need|prefer|request|requesting|demand|ask for|asking for|looking for|give me|get me"
    r"|find me|bring me|(?:can|could|may) (?:i|we) (?:please )?(?:get|have)|i'?d like|i would like"
    r"|i'?d rather have)"
)
_EN_BOT = r"(?:bots?|chatbots?|robots?|machines?|ai|computers?|automated (?:system|assistant|service))"
_EN_RUDE = r"(?:(?:stupid|dumb|useless|fucking|damn) )"

EN: Final = RequestPatterns(
    requests=(
        # talk / speak / chat to a person, an agent, your manager
        rf"{S}(?:talk|speak|chat|talking|speaking|chatting|communicate) (?:to|with) {_EN_DET}?{_EN_ADJ}{{0,2}}"
        rf"{_EN_NOUN}{E}{_EN_THING}",
        # connect / transfer / put me through to an agent
        rf"{S}(?:connect|transfer|put|pass|forward|escalate|route|redirect|hand|send|switch)"
        rf"(?: (?:me|us|this|it|my (?:call|chat|case|ticket|issue|complaint)))?(?: (?:over|through|back|on))?"
        rf" (?:to|with) {_EN_DET}?{_EN_ADJ}{{0,2}}{_EN_NOUN}{E}{_EN_THING}",
        # I want / need / can I get an agent, a real person (a plain "person" must be real/live/…)
        rf"{S}{_EN_WANT} {_EN_DET}?{_EN_ADJ}{{0,2}}{_EN_STRONG}{E}{_EN_THING}",
        rf"{S}{_EN_WANT} {_EN_DET}?{_EN_ADJ}{{1,2}}{_EN_WEAK}{E}{_EN_THING}",
        rf"{S}(?:give|get|find|bring) me (?:a |an |some |another )?(?:person|someone|somebody|human|people){E}",
        # can a human help me? could an agent call me back?
        rf"{S}(?:can|could|will) (?:a |an |some )?{_EN_ADJ}?(?:human|person|agent|representative|someone real)"
        rf" (?:please )?(?:help|assist|look at|check|call|contact|take over){E}",
        # is anyone there? any humans here?
        rf"{S}(?:(?:is|are) (?:there )?)?(?:anyone|anybody|any humans?|a human|a real (?:person|human))"
        rf" (?:there|here|out there|alive|real|human|on the other (?:end|side)){E}",
    ),
    bare=(
        rf"{S}(?:live|human) (?:agents?|persons?|humans?|representatives?|reps?|operators?){E}",
        rf"{S}customer (?:service|support|care) (?:reps?|representatives?|agents?|person){E}",
    ),
    refusals=(
        rf"{S}(?:don'?t|do not|no longer) want to (?:talk|speak|chat) (?:to|with)"
        rf" (?:a |an |the |this |your )?{_EN_RUDE}?{_EN_BOT}{E}",
        rf"{S}(?:tired|sick|fed up) of (?:talking|chatting|speaking) (?:to|with)"
        rf" (?:a |an |the |this |your )?{_EN_RUDE}?{_EN_BOT}{E}",
        # a robot is also what Acme sells: only a *bot* may be stopped without "talking to"
        rf"{S}(?:stop|quit|no more|enough(?: of)?)(?: this| the| you| your)? {_EN_RUDE}?(?:bot|chatbot)s?{E}",
    ),
    negation=r"\b(?:not|don'?t|doesn'?t|didn'?t|never|no need|no longer|nor)\b",
    identity=(
        r"\b(?:am i|are we|i'?m|i am|are you|is this|is that|is it|you are|you're|was that|was this)"
        r"(?: really| actually| even| still| now| just)?(?: an?)? ?$"
    ),
    definite=(r"\b(?:the|that|this|those|these|your|my|his|her|their|our|previous|last|other|same|first|second) $"),
    past=r"\b(?:spoke|spoken|talked|chatted|met|called|already|yesterday|earlier|previously|last time)\b",
    report=(
        r"^(?: [\w'-]+){0,2} (?:told|said|was|were|did|didn'?t|hung|promised|gave|sent|called|explained"
        r"|spoke|talked|helped|answered|emailed|replied|confirmed|had|couldn'?t|wouldn'?t)\b"
    ),
)

# --- German -------------------------------------------------------------------------------

_DE_DET = (
    r"(?:(?:einem|einer|einen|eine|ein|dem|der|den|die|ihrem|ihrer|ihren|ihre|eurem|eurer|euren"
    r"|einem ihrer|einer ihrer|einem eurer) )"
)
_DE_ADJ = (
    r"(?:(?:echten|echte|echter|richtigen|richtige|richtiger|realen|reale|realer|menschlichen|menschliche"
    r"|menschlicher|lebendigen|lebenden|kompetenten|zustandigen|zustaendigen) )"
)
_DE_STRONG = (
    r"(?:menschen aus fleisch und blut|menschen|mensch|mitarbeiter(?:innen|in|n)?|mitarbeitender?n?"
    r"|servicemitarbeiter(?:in)?|kundenberater(?:in)?|berater(?:in)?|sachbearbeiter(?:in)?"
    r"|ansprechpartner(?:in)?|agent(?:en|in)?|supportmitarbeiter(?:in)?|support-?team|support"
    r"|kundendienst(?:es)?|kundenservice|kundensupport|service-?team|operator|vorgesetzten?|chef|chefin"
    r"|kollegen|kollegin|menschliche (?:hilfe|unterstutzung|unterstuetzung))"
)
_DE_NOUN = rf"(?:{_DE_STRONG}|person|personen|jemandem|jemanden|jemand)"
_DE_TALK = r"(?:sprechen|reden|chatten|schreiben|telefonieren|kommunizieren|verbunden werden|verbinden)"
_DE_BOT = r"(?:bot|chatbot|roboter|maschine|computer|ki|automaten)"

DE: Final = RequestPatterns(
    requests=(
        # (ich möchte) mit einem Menschen (bitte) sprechen
        rf"{S}mit {_DE_DET}?{_DE_ADJ}{{0,2}}{_DE_NOUN}{E}(?: [\w'-]+){{0,3}}? {_DE_TALK}{E}",
        rf"{S}(?:sprechen|reden|chatten) (?:bitte )?mit {_DE_DET}?{_DE_ADJ}{{0,2}}{_DE_NOUN}{E}",
        # den Kundendienst sprechen, einen Mitarbeiter erreichen
        rf"{S}(?:(?:den|die|einen|eine|ihren|ihre) )?{_DE_ADJ}{{0,2}}(?:{_DE_STRONG}|jemanden)"
        rf"(?: bitte| mal| jetzt| sofort){{0,2}} (?:sprechen|erreichen|kontaktieren){E}",
        # verbinden Sie mich (bitte) mit einem Mitarbeiter; leiten Sie mich an einen Menschen weiter
        rf"{S}(?:verbinden|verbinde|verbindet|weiterleiten|leiten|leite|stellen|stelle|durchstellen|ubergeben"
        rf"|uebergeben|ubergib|uebergib)(?: sie| du)? (?:mich|uns)(?: bitte)?(?: weiter)? (?:mit|an|zu)"
        rf" {_DE_DET}?{_DE_ADJ}{{0,2}}{_DE_NOUN}{E}",
        # ich möchte / brauche / will einen (echten) Mitarbeiter
        rf"{S}(?:mochte|moechte|will|wollte|brauche|benotige|benoetige|hatte gerne?|haette gerne?"
        rf"|wurde gerne?|wuerde gerne?|wunsche|wuensche|verlange|fordere|bitte um|suche|gib mir|geben sie mir)"
        rf"(?: gerne?| bitte| sofort| jetzt| endlich)* {_DE_DET}?{_DE_ADJ}{{0,2}}{_DE_STRONG}{E}",
        # ist da jemand? gibt es hier einen Menschen?
        rf"{S}ist (?:da|hier|dort) (?:(?:irgend)?jemand|ein (?:echter )?mensch|ein mitarbeiter){E}",
        rf"{S}gibt es (?:hier |da |bei ihnen )?(?:einen |eine )?{_DE_ADJ}?"
        rf"(?:menschen|mitarbeiter(?:in)?|ansprechpartner(?:in)?){E}",
        # kann mir ein Mensch helfen?
        rf"{S}(?:kann|konnte|koennte|soll) (?:mir )?(?:bitte )?(?:ein|eine) {_DE_ADJ}?"
        rf"(?:mensch|mitarbeiter(?:in)?|berater(?:in)?)(?: mir)?(?: bitte)? helfen{E}",
    ),
    bare=(
        rf"{S}(?:(?:einen|einem|eine|einer) )?(?:echten|richtigen|realen|lebendigen|menschlichen)"
        rf" (?:menschen|mitarbeiter(?:in)?|person|ansprechpartner(?:in)?|berater(?:in)?){E}",
    ),
    refusals=(
        rf"{S}nicht (?:mehr )?mit (?:einem|einer|dem|der|diesem|dieser|ihrem|ihrer) (?:(?:blod|bloed|dumm|doof)\w* )?"
        rf"{_DE_BOT}{E}(?: [\w'-]+){{0,2}}? (?:sprechen|reden|chatten|schreiben){E}",
        # "keinen Roboter mehr" is about the product; only a bot or a machine may be refused bare
        rf"{S}keinen (?:bot|chatbot|computer|automaten)(?: mehr)?{E}",
        rf"{S}(?:genug|schluss) mit (?:dem|diesem) (?:bot|chatbot){E}",
    ),
    negation=r"\b(?:nicht|nie|niemals|kein\w*)\b",
    identity=(
        r"\b(?:(?:spreche|rede|chatte|schreibe|bin|sind|bist) (?:ich|wir|sie|du)"
        r"|(?:ist|sind|bist) (?:das|du|sie|es))(?: hier| gerade| wirklich| eigentlich| jetzt)*"
        r"(?: (?:mit|bei))?(?: (?:ein|eine|einen|einem|einer|dem|der))? ?$"
    ),
    definite=(
        r"\b(?:der|die|das|dem|den|des|dieser|diese|diesem|diesen|ihr|ihre|ihrem|ihren|euer|eure|dein|deine"
        r"|deinem|mein|meine|meinem|meinen) $"
    ),
    past=r"\b(?:hatte|hatten|war|waren|bereits|gestern|vorhin|letztes mal)\b",
    report=(
        r"^(?: [\w'-]+){0,3} (?:gesprochen|geredet|gechattet|telefoniert|gehabt|getroffen|erreicht|gesagt"
        r"|war|hat|hatte)\b"
    ),
)

# --- French -------------------------------------------------------------------------------

_FR_DET = (
    r"(?:(?:un|une|le|la|les|des|du|au|aux|votre|vos|un de vos|une de vos|l'un de vos|l'une de vos) "
    r"|l'|d'un |d'une )"
)
_FR_ADJ = r"(?:(?:vrai|vraie|vrais|veritable|reel|reelle) )"
_FR_POST = r"(?: (?:humain|humaine|reel|reelle|physique|en chair et en os|de chair et d'os|vivant|vivante))"
_FR_STRONG = (
    r"(?:humains?|etres? humains?|conseill(?:er|ere)s?|agents?|operat(?:eur|rice)s?|interlocut(?:eur|rice)s?"
    r"|responsables?|superieurs?|service (?:client(?:s|ele)?|apres-vente|consommateurs?)|sav|hotline"
    r"|support(?: client)?|(?:vraie|veritable) personne|personne (?:reelle|humaine|en chair et en os)"
    r"|quelqu'un (?:de reel|de vrai|d'humain|de votre equipe|du service client|chez vous))"
)
_FR_NOUN = rf"(?:{_FR_STRONG}|personnes?|quelqu'un|quelquun|qqn|employes?|collaborat(?:eur|rice)s?)"
_FR_BOT = r"(?:bot|chatbot|robot|machine|ia|ordinateur|automate)s?"

FR: Final = RequestPatterns(
    requests=(
        # parler à un humain, discuter avec un conseiller, parler au service client
        rf"{S}(?:parler|discuter|causer|echanger|chatter|communiquer|converser) (?:a |avec |au |aux )?"
        rf"{_FR_DET}?{_FR_ADJ}?{_FR_NOUN}{_FR_POST}?{E}",
        # mettez-moi en relation avec un conseiller
        rf"{S}(?:mettre|mettez|mets|mettez-moi|mets-moi|mis|mise|etre|entrer|rentrer) en"
        rf" (?:relation|contact|communication)"
        rf" avec {_FR_DET}?{_FR_ADJ}?{_FR_NOUN}{_FR_POST}?{E}",
        # passez-moi un conseiller, transférez-moi vers un agent
        rf"{S}(?:passez-moi|passe-moi|me passer|transferez-moi|transfere-moi|me transferer|transferer"
        rf"|redirigez-moi|me rediriger) (?:a |au |aux |vers |avec )?{_FR_DET}?{_FR_ADJ}?{_FR_NOUN}{_FR_POST}?{E}",
        # je veux un humain, j'ai besoin d'un conseiller
        rf"{S}(?:veux |voudrais |souhaite |souhaiterais |aimerais |exige |demande |prefere |prefererais"
        rf" |reclame |cherche |besoin d'|besoin de )(?:avoir |parler a )?{_FR_DET}?{_FR_ADJ}?{_FR_STRONG}"
        rf"{_FR_POST}?{E}",
        # y a-t-il quelqu'un ? il y a un humain ici ?
        rf"{S}(?:y a-t-il|y a t il|y a-t'il) (?:un |une )?(?:quelqu'un|humain|vrai humain|etre humain"
        rf"|personne reelle|conseiller){E}",
        rf"{S}il y a (?:un |une )?(?:quelqu'un|humain|vrai humain|etre humain)"
        rf" (?:la|ici|de reel|de vrai|derriere|en ligne){E}",
        # un humain peut m'aider ?
        rf"{S}(?:un|une) {_FR_ADJ}?(?:humain|conseiller|conseillere|agent|personne) (?:peut|pourrait|pourra)"
        rf" (?:m'aider|me rappeler|me contacter|m'appeler|me repondre){E}",
    ),
    bare=(
        rf"{S}(?:(?:un|une) )?(?:vrai|vraie|veritable) (?:etre humain|humain|personne|conseiller|conseillere"
        rf"|agent|interlocuteur){E}",
        rf"{S}(?:(?:un|une) )?(?:agent|conseiller|conseillere|operateur|operatrice|interlocuteur)"
        rf" (?:humain|humaine|reel|reelle|en chair et en os){E}",
    ),
    refusals=(
        rf"{S}(?:pas|plus|jamais) (?:envie de )?(?:parler|discuter|causer|chatter) (?:a|avec)"
        rf" (?:un |une |le |la |l'|ce |cette |votre )?{_FR_BOT}{E}",
        rf"{S}(?:marre|assez|ras-le-bol|ras le bol) (?:de |d')(?:parler|discuter) (?:a|avec)"
        rf" (?:un |une |le |la |l'|ce |cette |votre )?{_FR_BOT}{E}",
        # "marre de ce robot" is about the product; only a bot or a machine may be refused bare
        rf"{S}(?:marre|assez|ras-le-bol|ras le bol) (?:de |d'|du )(?:ce |cette |votre |ton )?"
        rf"(?:bot|chatbot|machine|ia|automate|robot conversationnel)s?{E}",
    ),
    negation=r"(?:\b(?:pas|jamais|aucun|aucune|ni|ne)\b|\bn')",
    identity=(
        r"\b(?:etes-vous|etes vous|es-tu|es tu|vous etes|tu es|c'est|est-ce|suis-je|je parle|je discute"
        r"|je suis en train de parler|je suis en contact)(?: bien| vraiment| reellement| actuellement)?"
        r"(?: (?:a|avec))?(?: (?:un|une))? ?$"
    ),
    definite=r"(?:\b(?:le|la|les|cet|cette|ce|ces|votre|vos|ton|ta|son|sa|mon|ma|du|au) |\bl')$",
    past=r"\b(?:deja|hier|parle|eu|discute|ete|avais|etait|tout a l'heure)\b",
    report=r"^(?: [\w'-]+){0,3} (?:m'a|a dit|etait|a ete|avait|a raccroche|m'avait)\b",
)

# --- Spanish ------------------------------------------------------------------------------

_ES_DET = r"(?:(?:un|una|el|la|los|las|algun|alguna|uno de sus|una de sus|uno de tus|alguno de sus|su|tu|al|a) )"
_ES_ADJ = r"(?:(?:verdadero|verdadera|autentico|autentica) )"
_ES_POST = r"(?: (?:real|reales|humano|humana|de verdad|de carne y hueso|vivo|viva))"
_ES_STRONG = (
    r"(?:seres? humanos?|humanos?|agentes?|asesor(?:a|es|as)?|operador(?:a|es|as)?|representantes?"
    r"|ejecutiv[oa]s?|supervisor(?:a|es|as)?|gerentes?|encargad[oa]s?|responsables?"
    r"|servicio (?:al cliente|tecnico|de atencion(?: al cliente)?)|atencion (?:al cliente|humana)"
    r"|soporte(?: tecnico)?|equipo de soporte"
    r"|persona (?:real|humana|de verdad|de carne y hueso)|alguien (?:real|de verdad|humano|de carne y hueso))"
)
_ES_NOUN = rf"(?:{_ES_STRONG}|personas?|alguien|emplead[oa]s?|gente)"
_ES_BOT = r"(?:bot|chatbot|robot|maquina|ia|computadora|ordenador|programa|contestador|sistema automatico)"

ES: Final = RequestPatterns(
    requests=(
        # hablar con una persona, contactar a un agente
        rf"{S}(?:hablar|platicar|charlar|conversar|chatear|comunicarme|contactar(?:me)?|ponerme en contacto)"
        rf" (?:con |a |al )?{_ES_DET}?{_ES_ADJ}?{_ES_NOUN}{_ES_POST}?{E}",
        # páseme con un asesor, comuníqueme con un agente
        rf"{S}(?:pasame|paseme|pasenme|me pasas|me pasa|me puede pasar|me pueden pasar|me podrias pasar"
        rf"|me podria pasar|transfiereme|transfierame|transferirme|comunicame|comuniqueme|conectame|conecteme"
        rf"|derivame|derivarme|ponme|pongame|me comunicas|me comunica|me conectas|me conecta)"
        rf" (?:con |a |al )?{_ES_DET}?{_ES_ADJ}?{_ES_NOUN}{_ES_POST}?{E}",
        # quiero un humano, necesito un agente, quiero a una persona real
        rf"{S}(?:quiero|quisiera|necesito|prefiero|exijo|pido|solicito|me gustaria|deseo|dame|denme|deme"
        rf"|busco|requiero) (?:a |al )?{_ES_DET}?{_ES_ADJ}?{_ES_STRONG}{_ES_POST}?{E}",
        # que me atienda una persona; ¿una persona me puede ayudar?
        rf"{S}me (?:atienda|atiendan|atiende) {_ES_DET}?{_ES_ADJ}?{_ES_NOUN}{_ES_POST}?{E}",
        rf"{S}(?:un|una) {_ES_ADJ}?(?:humano|persona|agente|asesor(?:a)?) (?:me )?(?:puede|podria|pueda)"
        rf"(?: me)? (?:ayudar|atender|llamar|contactar){E}",
        # ¿hay alguien?
        rf"{S}(?:hay|habra) (?:alguien|algun humano|un humano|una persona real|un asesor|algun asesor)"
        rf"(?: (?:real|ahi|alli|aqui|de verdad|humano))?{E}",
    ),
    bare=(
        rf"{S}con (?:un|una) (?:asesor(?:a)?|agente|humano|representante|operador(?:a)?|ejecutiv[oa]"
        rf"|ser humano|persona real|persona de verdad|alguien real){E}",
        rf"{S}(?:una )?persona (?:real|de verdad|de carne y hueso){E}",
        rf"{S}(?:un )?(?:humano|agente|asesor) (?:real|de verdad|de carne y hueso){E}",
        rf"{S}(?:(?:un|una) )?(?:agente|asesor|asesora|operador|operadora) human[oa]{E}",
    ),
    refusals=(
        rf"{S}no (?:quiero|deseo|me interesa) (?:hablar|chatear|seguir hablando|conversar) con"
        rf" (?:un |una |el |la |este |esta |tu |su )?{_ES_BOT}s?{E}",
        rf"{S}(?:hart[oa]|cansad[oa]) de (?:hablar|chatear) con (?:un |una |el |la |este |esta )?{_ES_BOT}s?{E}",
        # "harto de este robot" is about the product; only a bot or a machine may be refused bare
        rf"{S}(?:hart[oa]|cansad[oa]) (?:de |del )(?:este |esta |el |la )?(?:bot|chatbot|maquina|contestador)s?{E}",
    ),
    negation=r"\b(?:no|nunca|jamas|tampoco|ni|sin)\b",
    identity=(
        r"\b(?:eres|es usted|sos|es esto|es este|estoy hablando|estoy chateando|hablo)"
        r"(?: realmente| de verdad| ahora)?(?: (?:con|a))?(?: (?:un|una))? ?$"
    ),
    definite=r"\b(?:el|la|los|las|ese|esa|este|esta|su|sus|tu|mi|del|al|aquel|aquella) $",
    past=r"\b(?:hable|hablado|tuve|estuve|fue|era|ayer|antes|atendio)\b",
    report=r"^(?: [\w'-]+){0,3} (?:me dijo|dijo|me atendio|atendio|fue|era|estuvo|me colgo|colgo|me respondio)\b",
)

HUMAN_REQUEST: Final[dict[Language, RequestPatterns]] = {"en": EN, "de": DE, "fr": FR, "es": ES}

# A message that is nothing but a call for someone, with politeness or urgency around it:
# "operator please", "Human!", "Mitarbeiter bitte", "un humain svp", "¡Un agente, por favor!".
_FILLER = (
    r"(?:please|pls|plz|now|right now|asap|immediately|hello|hi|hey|ok|okay|thanks|thank you|just|i said|again"
    r"|urgent|bitte|sofort|jetzt|hallo|danke|einfach|dringend|s'il vous plait|s'il te plait|svp|stp"
    r"|maintenant|tout de suite|bonjour|merci|urgent|por favor|porfa|ya|ahora|ahora mismo|hola|gracias|urgente)"
)
_CALL = (
    r"(?:(?:a|an|the|ein|einen|eine|un|une|una) )?"
    r"(?:(?:real|live|actual|echten|echter|vrai|vraie) )?"
    r"(?:humans?|person|agent|representative|rep|operator|supervisor|manager|someone real|human agent"
    r"|customer service(?: rep| agent| representative)?"
    r"|mensch|menschen|mitarbeiter(?:in)?|berater(?:in)?|kundendienst|kundenservice"
    r"|humain|conseiller(?:e)?|operateur|operatrice|service client|personne reelle"
    r"|humano|persona|agente|asesor(?:a)?|operador(?:a)?|representante|persona real|ejecutivo)"
)
_GAP = r"[\s.,;:!?¡¿…-]+"
STANDALONE: Final = rf"^[\s.,;:!?¡¿…-]*(?:{_FILLER}{_GAP})*{_CALL}(?:{_GAP}{_FILLER})*[\s.,;:!?¡¿…-]*$"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- sentiment ----------------------------------------------------------------------------
# Valences on a -3..3 scale (VADER's): about -1 is mild ("bad"), -2.5 strong ("useless"), -3 extreme.
# Multi-word entries are matched as phrases first and are immune to negation around them ("pas terrible").
# Words about a broken product ("doesn't work", "error") are deliberately absent: they describe a
# problem, not a mood, and nearly every support conversation has them.

VALENCE: Final[dict[Language, dict[str, float]]] = {
    "en": {
        # negative
        "useless": -2.5, "worthless": -2.5, "pointless": -2.0, "hopeless": -2.0, "terrible": -2.5,
        "horrible": -2.5, "awful": -2.5, "dreadful": -2.5, "worst": -3.0, "worse": -2.0, "bad": -1.0,
        "poor": -1.0, "lousy": -2.0, "crap": -2.5, "crappy": -2.5, "rubbish": -2.0, "garbage": -2.5,
        "trash": -2.0, "junk": -2.0, "pathetic": -2.5, "ridiculous": -2.5, "absurd": -2.0,
        "unacceptable": -2.5, "outrageous": -2.5, "disgraceful": -2.5, "disgusting": -2.5,
        "shameful": -2.5, "appalling": -2.5, "incompetent": -2.5, "inept": -2.5, "clueless": -2.0,
        "stupid": -2.0, "dumb": -2.0, "idiot": -2.5, "idiots": -2.5, "idiotic": -2.5, "moron": -2.5,
        "angry": -2.5, "furious": -3.0, "livid": -3.0, "mad": -2.0, "upset": -2.0, "annoyed": -2.0,
        "annoying": -2.0, "irritated": -2.0, "irritating": -2.0, "frustrated": -2.5, "frustrating": -2.5,
        "frustration": -2.0, "disappointed": -2.0, "disappointing": -2.0, "disappointment": -2.0,
        "unhappy": -2.0, "dissatisfied": -2.0, "disgusted": -2.5, "sad": -1.5, "hate": -2.5,
        "hated": -2.5, "sucks": -2.5, "suck": -2.0, "wasted": -2.0, "scam": -3.0, "ripoff": -2.5,
        "nonsense": -2.0, "bullshit": -3.0, "wtf": -2.5, "damn": -1.5, "shit": -2.5, "fuck": -3.0,
        "fucking": -2.5, "fucked": -3.0, "nightmare": -2.5, "disaster": -2.5, "unbelievable": -1.5,
        "unhelpful": -2.0, "ugh": -1.5, "argh": -1.5,
        "waste of time": -2.5, "waste of money": -2.5, "wasting my time": -2.5, "rip off": -2.5,
        "fed up": -2.5, "sick of": -2.0, "tired of": -1.5, "what a joke": -2.5, "is a joke": -2.0,
        "never again": -2.5, "what the hell": -2.0, "not acceptable": -2.5, "no help": -2.0,
        "not helpful": -2.0, "not helping": -2.0, "doesn't help": -1.5, "didn't help": -1.5,
        "thanks for nothing": -2.5,
        # positive
        "thanks": 1.5, "thank": 1.5, "thx": 1.5, "great": 2.0, "excellent": 2.5, "perfect": 2.5,
        "awesome": 2.5, "amazing": 2.5, "helpful": 2.0, "good": 1.5, "nice": 1.5, "love": 2.0,
        "loved": 2.0, "wonderful": 2.5, "fantastic": 2.5, "happy": 2.0, "glad": 2.0, "appreciate": 2.0,
        "appreciated": 2.0, "brilliant": 2.5, "cool": 1.5, "super": 2.0, "lovely": 2.0, "pleased": 2.0,
        "satisfied": 2.0, "solved": 1.5, "easy": 1.0,
        "thank you": 2.0, "well done": 2.0,
    },
    "de": {
        # negative
        "nutzlos": -2.5, "sinnlos": -2.0, "zwecklos": -2.0, "unbrauchbar": -2.5, "schrecklich": -2.5,
        "furchtbar": -2.5, "grauenhaft": -2.5, "grausam": -2.5, "katastrophal": -2.5, "katastrophe": -2.5,
        "miserabel": -2.5, "mies": -2.0, "schlecht": -1.0, "schlechter": -2.0, "schlechteste": -3.0,
        "schlechtesten": -3.0, "schlechtester": -3.0, "unverschamt": -2.5, "unverschaemt": -2.5,
        "frechheit": -2.5, "frech": -2.0, "lacherlich": -2.5, "laecherlich": -2.5, "absurd": -2.0,
        "inakzeptabel": -2.5, "unakzeptabel": -2.5, "zumutung": -2.5, "skandal": -2.5, "skandalos": -2.5,
        "skandaloes": -2.5, "schande": -2.0, "peinlich": -2.0, "inkompetent": -2.5, "unfahig": -2.5,
        "unfaehig": -2.5, "dumm": -2.0, "blod": -2.0, "bloed": -2.0, "doof": -1.5, "idiotisch": -2.5,
        "idioten": -2.5, "wutend": -2.5, "wuetend": -2.5, "sauer": -2.0, "verargert": -2.0,
        "veraergert": -2.0, "argerlich": -2.0, "aergerlich": -2.0, "genervt": -2.0, "nervig": -2.0,
        "nervt": -2.0, "frustriert": -2.5, "frustrierend": -2.5, "enttauscht": -2.0, "enttaeuscht": -2.0,
        "enttauschend": -2.0, "enttaeuschend": -2.0, "enttauschung": -2.0, "enttaeuschung": -2.0,
        "unzufrieden": -2.0, "traurig": -1.5, "hasse": -2.5, "mull": -2.0, "muell": -2.0,
        "schrott": -2.5, "betrug": -3.0, "abzocke": -3.0, "zeitverschwendung": -2.5,
        "geldverschwendung": -2.5, "scheisse": -2.5, "scheiss": -2.5, "beschissen": -2.5, "kacke": -2.0,
        "verdammt": -1.5, "mist": -1.5, "ubel": -2.0, "uebel": -2.0, "ungenugend": -2.0,
        "ungenuegend": -2.0,
        "es reicht": -2.0, "die nase voll": -2.5, "keine hilfe": -2.0, "nicht hilfreich": -2.0,
        "hilft nicht": -1.5, "hilft mir nicht": -1.5, "gar nicht hilfreich": -2.5, "danke fur nichts": -2.5,
        "danke fuer nichts": -2.5,
        # positive
        "danke": 1.5, "dankeschon": 2.0, "dankeschoen": 2.0, "super": 2.0, "toll": 2.0, "prima": 2.0,
        "klasse": 2.0, "gut": 1.5, "perfekt": 2.5, "hilfreich": 2.0, "grossartig": 2.5, "wunderbar": 2.5,
        "ausgezeichnet": 2.5, "hervorragend": 2.5, "froh": 2.0, "zufrieden": 2.0, "genial": 2.5,
        "spitze": 2.0, "nett": 1.5, "freundlich": 1.5, "top": 2.0, "cool": 1.5, "gelost": 1.5,
        "geloest": 1.5, "gefallt": 1.5, "gefaellt": 1.5,
        "vielen dank": 2.0,
    },
    "fr": {
        # negative
        "inutile": -2.5, "nul": -2.5, "nulle": -2.5, "nuls": -2.5, "horrible": -2.5, "terrible": -2.0,
        "affreux": -2.5, "affreuse": -2.5, "lamentable": -2.5, "minable": -2.5, "pathetique": -2.5,
        "ridicule": -2.5, "absurde": -2.0, "scandaleux": -2.5, "scandaleuse": -2.5, "scandale": -2.5,
        "inadmissible": -2.5, "inacceptable": -2.5, "honteux": -2.5, "honteuse": -2.5, "honte": -2.0,
        "enerve": -2.0, "enervee": -2.0, "enervant": -2.0, "agace": -2.0, "agacee": -2.0, "agacant": -2.0,
        "furieux": -3.0, "furieuse": -3.0, "fache": -2.0, "fachee": -2.0, "colere": -2.5, "decu": -2.0,
        "decue": -2.0, "decevant": -2.0, "deception": -2.0, "frustre": -2.5, "frustree": -2.5,
        "frustrant": -2.5, "marre": -2.5, "pire": -2.5, "mauvais": -1.0, "mauvaise": -1.0, "mal": -1.0,
        "catastrophique": -2.5, "catastrophe": -2.5, "debile": -2.5, "stupide": -2.0, "idiot": -2.5,
        "idiote": -2.5, "incompetent": -2.5, "incompetente": -2.5, "incompetents": -2.5, "arnaque": -3.0,
        "escroquerie": -3.0, "escrocs": -3.0, "merde": -2.5, "putain": -2.0, "deteste": -2.5,
        "insupportable": -2.5, "craint": -2.0, "pourri": -2.5, "pourrie": -2.5, "naze": -2.0,
        "penible": -2.0, "mecontent": -2.0, "mecontente": -2.0, "galere": -1.5,
        "n importe quoi": -2.0, "perte de temps": -2.5, "ras le bol": -2.5, "en ai assez": -2.0,
        "aucune aide": -2.0, "pas utile": -2.0, "sert a rien": -2.0, "pas terrible": -1.0,
        "merci pour rien": -2.5,
        # positive
        "merci": 1.5, "super": 2.0, "genial": 2.5, "parfait": 2.5, "excellent": 2.5, "top": 2.0,
        "bien": 1.0, "utile": 2.0, "formidable": 2.5, "content": 2.0, "contente": 2.0, "ravi": 2.5,
        "ravie": 2.5, "sympa": 1.5, "gentil": 1.5, "gentille": 1.5, "bravo": 2.0, "impeccable": 2.5,
        "efficace": 2.0, "cool": 1.5, "nickel": 2.0, "aime": 1.5, "adore": 2.5,
        "merci beaucoup": 2.0, "au top": 2.0,
    },
    "es": {
        # negative
        "inutil": -2.5, "inutiles": -2.5, "pesimo": -3.0, "pesima": -3.0, "horrible": -2.5,
        "terrible": -2.5, "fatal": -2.0, "malo": -1.0, "mala": -1.0, "mal": -1.0, "malisimo": -2.5,
        "peor": -2.5, "asco": -2.5, "asqueroso": -2.5, "verguenza": -2.5, "vergonzoso": -2.5,
        "ridiculo": -2.5, "ridicula": -2.5, "absurdo": -2.0, "inaceptable": -2.5, "indignante": -2.5,
        "indignado": -2.5, "indignada": -2.5, "enojado": -2.5, "enojada": -2.5, "enfadado": -2.5,
        "enfadada": -2.5, "cabreado": -2.5, "cabreada": -2.5, "molesto": -2.0, "molesta": -2.0,
        "furioso": -3.0, "furiosa": -3.0, "harto": -2.5, "harta": -2.5, "frustrado": -2.5,
        "frustrada": -2.5, "frustrante": -2.5, "decepcionado": -2.0, "decepcionada": -2.0,
        "decepcionante": -2.0, "decepcion": -2.0, "estafa": -3.0, "timo": -3.0, "basura": -2.5,
        "porqueria": -2.5, "mierda": -2.5, "joder": -2.0, "estupido": -2.0, "estupida": -2.0,
        "idiota": -2.5, "tonto": -2.0, "tonta": -2.0, "incompetente": -2.5, "incompetentes": -2.5,
        "odio": -2.5, "lamentable": -2.5, "desastre": -2.5, "nefasto": -2.5, "penoso": -2.0,
        "perdida de tiempo": -2.5, "no sirve para nada": -2.5, "no sirves para nada": -2.5,
        "no sirves": -2.0, "no me sirve": -1.5, "no ayuda": -1.5, "no ayudas": -1.5, "gracias por nada": -2.5,
        # positive
        "gracias": 1.5, "genial": 2.5, "excelente": 2.5, "perfecto": 2.5, "perfecta": 2.5,
        "estupendo": 2.5, "bueno": 1.5, "buena": 1.5, "bien": 1.0, "util": 2.0, "fantastico": 2.5,
        "maravilloso": 2.5, "contento": 2.0, "contenta": 2.0, "feliz": 2.0, "encantado": 2.0,
        "encantada": 2.0, "amable": 1.5, "chevere": 2.0, "super": 2.0, "gusta": 1.5, "encanta": 2.0,
        "muchas gracias": 2.0, "de lujo": 2.0,
    },
}  # fmt: skip

# Words that mean something else (or nothing emotional) in another of the four languages: they count
# only in a text of their own language ("mal" is "bad" in French and Spanish, "once" in German; "Bad"
# is a bathroom in German). A text whose language is unclear is read as English.
LANGUAGE_ONLY: Final = frozenset(
    {"mal", "bad", "mist", "mull", "top", "toll", "prima", "gut", "content", "fatal", "nickel", "parfait"}
)

# Function words that tell the four languages apart (none shared between two of them).
STOPWORDS: Final[dict[Language, frozenset[str]]] = {
    "en": _words(
        "the is are this that it you your and with not what have has i my of to for on do does don't can how"
        " why it's i'm be just there they at from very"
    ),
    "de": _words(
        "ich nicht und das der die ist mit ein eine einen einem mir mich wir auch noch schon aber kann kannst"
        " bitte wie nur sehr fur fuer dass auf dich mein meine habe hat wird sind bin wieder warum keine kein"
        " nach oder wenn"
    ),
    "fr": _words(
        "je j le les des est et pas ne n une vous nous mon mes ce ca c avec pour qui tres mais sur du au il"
        " elle ai suis sont votre rien quoi pourquoi l d qu cette"
    ),
    "es": _words(
        "el los las es y una muy pero con por para mi esto esta este lo se ya tengo estoy hay nada del al"
        " como cuando porque su yo eso sirve puedo quiero tiene fue hola"
    ),
}

# A negator flips the next sentiment word within three words ("not very helpful"); German `nicht` also
# flips the word just before it ("gefällt mir nicht").
NEGATORS: Final = _words(
    "not no never cannot dont doesnt didnt isnt wasnt cant wont aint nothing nobody none neither nor without"
    " nicht nie niemals kein keine keinen keinem keiner keines nichts"
    " ne n pas jamais aucun aucune ni rien peu"
    " nunca jamas tampoco nada sin poco"
)
POST_NEGATORS: Final = frozenset({"nicht"})
INTENSIFIERS: Final = _words(
    "very really so extremely totally completely absolutely utterly incredibly super too truly seriously"
    " sehr total voll vollig voellig absolut extrem echt wirklich mega ultra"
    " tres vraiment trop completement totalement absolument tellement vachement hyper"
    " muy realmente totalmente completamente demasiado tan re sumamente"
)
DOWNTONERS: Final = _words("slightly somewhat kinda bit little bisschen etwas leicht")
# "un peu" / "un poco" tone down; a bare "peu" / "poco" negates ("peu utile").
SOFTENING_ARTICLES: Final = frozenset({"un"})
CONTRAST: Final = _words("but however aber jedoch sondern mais pourtant pero sino")
# French elisions split off a word: "c'est" → "c" "est", "n'importe" → "n" "importe".
ELISIONS: Final = _words("c j l d n m t s qu jusqu lorsqu puisqu")

EMOJI: Final[dict[str, float]] = {
    "😡": -2.5, "🤬": -3.0, "😠": -2.5, "😤": -2.0, "👎": -2.0, "😞": -1.5, "😢": -1.5, "😭": -2.0,
    "🙄": -1.5, "💩": -2.0, ">:(": -2.5, ":-(": -1.5, ":(": -1.5,
    "🙂": 1.0, "😊": 1.5, "😀": 1.5, "😃": 1.5, "👍": 1.5, "🙏": 1.0, "❤": 2.0, ":-)": 1.0, ":)": 1.0,
    ":D": 1.5,
}  # fmt: skip
