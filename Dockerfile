FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 MISTUDIO_DATA_DIR=/data MISTUDIO_HOST=0.0.0.0
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
# The application only: a plain `COPY . .` would also bake in a developer's .venv and data/
# (its SQLite database, downloaded models and secret key).
COPY manage.py ./
COPY mistudio_site mistudio_site
COPY models_app models_app
COPY templates_app templates_app
COPY templates templates
COPY static static
VOLUME /data
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py ensure_admin && python manage.py run_studio --host 0.0.0.0 --port 8000"]
