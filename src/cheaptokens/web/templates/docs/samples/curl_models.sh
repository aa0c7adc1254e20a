curl -sS "__BASE_URL__/models?type=text"
