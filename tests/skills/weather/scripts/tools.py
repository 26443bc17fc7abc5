"""The weather skill's tools: one function per tool in skill.toml."""
from urllib.parse import quote

import carapace

API = "https://weather.carapace.test/v1/forecast"


def forecast(place: str) -> dict:
    # The key's reference: the box puts the owner's key in as it sends the request.
    headers = {
        "accept": "application/json",
        "authorization": "Bearer " + carapace.secret("WEATHER_KEY"),
    }
    answer = carapace.fetch(f"{API}?place={quote(place)}", headers=headers)
    if answer.status != 200:
        raise RuntimeError(f"the weather service answered {answer.status}: {answer.text[:200]}")
    data = answer.json()
    return {"place": place, "celsius": data["celsius"], "sky": data["sky"]}
