#!/usr/bin/env python3
"""Compare language-identification packages for the gateway (accuracy and speed on short
prefixes of answers). Prints a table; the result is recorded in docs/gateway.md."""

from __future__ import annotations

import time

SAMPLES = {
    "en": [
        "The deployment finished and every replica is ready to serve traffic now.",
        "Please summarise the quarterly report in three short bullet points.",
        "I could not find the file you mentioned, can you share the link again?",
        "Our team reviews each answer before it goes out to customers.",
        "The weather tomorrow will be sunny with a light breeze in the afternoon.",
    ],
    "pt": [
        "A implantação terminou e todas as réplicas estão prontas para atender.",
        "Por favor, resuma o relatório trimestral em três tópicos curtos.",
        "Não encontrei o arquivo que você mencionou, pode enviar o link de novo?",
        "Nossa equipe revisa cada resposta antes de enviá-la aos clientes.",
        "O tempo amanhã será ensolarado com uma brisa leve à tarde.",
    ],
    "es": [
        "El despliegue terminó y todas las réplicas están listas para atender.",
        "Por favor, resume el informe trimestral en tres puntos breves.",
        "No encontré el archivo que mencionaste, ¿puedes compartir el enlace otra vez?",
        "Nuestro equipo revisa cada respuesta antes de enviarla a los clientes.",
        "El tiempo mañana será soleado con una brisa ligera por la tarde.",
    ],
    "fr": [
        "Le déploiement est terminé et chaque réplique est prête à servir.",
        "Veuillez résumer le rapport trimestriel en trois points courts.",
        "Je n'ai pas trouvé le fichier mentionné, pouvez-vous renvoyer le lien ?",
        "Notre équipe relit chaque réponse avant de l'envoyer aux clients.",
        "Demain il fera beau avec une légère brise l'après-midi.",
    ],
    "de": [
        "Die Bereitstellung ist abgeschlossen und jede Replik ist bereit.",
        "Bitte fassen Sie den Quartalsbericht in drei kurzen Punkten zusammen.",
        "Ich konnte die erwähnte Datei nicht finden, kannst du den Link erneut senden?",
        "Unser Team prüft jede Antwort, bevor sie an Kunden geht.",
        "Morgen wird es sonnig mit einer leichten Brise am Nachmittag.",
    ],
}


def bench(name: str, fn) -> None:  # type: ignore[no-untyped-def]
    items = [
        (lang, text[:n]) for lang, texts in SAMPLES.items() for text in texts for n in (40, 80)
    ]
    fn("warm up")
    t = time.perf_counter()
    reps = 20
    correct = 0
    for _ in range(reps):
        correct = sum(1 for lang, text in items if fn(text) == lang)
    per_call = (time.perf_counter() - t) / (reps * len(items)) * 1e6
    print(
        f"{name:<12} accuracy {correct}/{len(items)} ({correct / len(items):.0%}), "
        f"{per_call:.0f} us per call"
    )


def main() -> None:
    import py3langid

    bench("py3langid", lambda s: py3langid.classify(s)[0])
    from langdetect import DetectorFactory, detect

    DetectorFactory.seed = 0
    bench("langdetect", detect)


if __name__ == "__main__":
    main()
